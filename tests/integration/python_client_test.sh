#!/usr/bin/env bash
# The Python client as a user gets it: clients/python installed by pip into a fresh venv, with
# no network (the wheels come from the wheelhouse deploy/setup.sh downloads), then
# python_client_test.py against a local deployment of the tiny DMS model (one CPU worker) with
# two API keys: the test's own (RAMI_API_KEY) and another one (its argument).
#   tests/integration/python_client_test.sh --build DIR [--python PYTHON]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="" PYTHON=/usr/bin/python3
while (($#)); do
  case "$1" in
    --build) BUILD="$2" ;;
    --python) PYTHON="$2" ;;
    *) echo "python_client_test: unknown flag $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$BUILD" ] || { echo "python_client_test: --build DIR is required" >&2; exit 2; }
WHEELHOUSE="${RAMI_TOOLS_VENV:-/opt/rami-tools-venv}/wheelhouse"
# setup.sh writes requirements.txt once every wheel is there.
if [ ! -f "$WHEELHOUSE/requirements.txt" ]; then
  echo "python_client_test: no wheelhouse at $WHEELHOUSE: run deploy/setup.sh --deps" >&2
  exit 1
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/rami-pyclient.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

"$PYTHON" -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install -q --disable-pip-version-check --no-index \
  --find-links "$WHEELHOUSE" "$ROOT/clients/python"
echo "python_client_test: installed $("$TMP/venv/bin/pip" list --disable-pip-version-check \
  2>/dev/null | grep -E '^(rami-client|grpcio|protobuf) ' | tr -s ' ' | paste -sd, -)"

cat >"$TMP/keys.jsonl" <<'JSON'
{"name": "py", "key": "py-key-0123456789abcdef", "rps": 0}
{"name": "other", "key": "other-key-0123456789abcdef", "rps": 0}
JSON
RAMI_API_KEY=py-key-0123456789abcdef "$ROOT/deploy/launch-node.sh" \
  --model "$ROOT/tests/golden/models/qwen3_dms" --cpu-workers 1 --tp 1 --port 0 --page-size 4 \
  --build "$BUILD" --logs "$TMP/logs" --api-keys-file "$TMP/keys.jsonl" \
  -- "$TMP/venv/bin/python" "$ROOT/tests/integration/python_client_test.py" \
  "$TMP/logs/coordinator.port" other-key-0123456789abcdef
