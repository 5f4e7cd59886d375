# Sourced by the tests that drive a local deployment with the official `openai` package
# (openai_api_test.sh, api_keys_http_test.sh, tls_test.sh): `real_client_test_env NAME "$@"`
# reads `--build DIR` and sets ROOT (the checkout), BUILD (absolute), PYTHON (the tools venv's,
# with openai installed) and TMP (a fresh folder, removed on exit).
# shellcheck shell=bash
# shellcheck disable=SC2034  # ROOT, BUILD, PYTHON and TMP are the caller's
real_client_test_env() {
  local name="$1"
  shift
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  BUILD=""
  while (($#)); do
    case "$1" in
      --build) BUILD="$2" ;;
      *) echo "$name: unknown flag $1" >&2; exit 2 ;;
    esac
    shift 2
  done
  [ -n "$BUILD" ] || { echo "$name: --build DIR is required" >&2; exit 2; }
  BUILD="$(cd "$BUILD" && pwd)"
  PYTHON="${RAMI_TOOLS_VENV:-/opt/rami-tools-venv}/bin/python"
  "$PYTHON" -c 'import openai' 2>/dev/null \
    || { echo "$name: no openai package in $PYTHON: run deploy/setup.sh --deps" >&2; exit 1; }
  TMP="$(mktemp -d "${TMPDIR:-/tmp}/rami-$name.XXXXXX")"
  # shellcheck disable=SC2064  # TMP is fixed now
  trap "rm -rf '$TMP'" EXIT
}
