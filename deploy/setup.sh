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
  libpcre2-dev libutf8proc-dev libgloo-dev
  python3-grpcio python3-protobuf
)

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
[ "${1:-}" = "--deps" ] && exit 0

# nvcc is not on PATH outside login shells (build-notes).
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
BUILD_DIR="${RAMI_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${RAMI_BUILD_TYPE:-RelWithDebInfo}" \
  ${RAMI_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "${RAMI_JOBS:-$(nproc)}"
