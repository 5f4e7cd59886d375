#!/usr/bin/env bash
# The HTTP API with clients nobody here wrote: the official `openai` Python package (from the
# tools venv deploy/setup.sh makes), curl and promtool, against a local deployment of the tiny
# DMS model (one CPU worker) given a ChatML chat template.
#   tests/integration/openai_api_test.sh --build DIR
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD=""
while (($#)); do
  case "$1" in
    --build) BUILD="$2" ;;
    *) echo "openai_api_test: unknown flag $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$BUILD" ] || { echo "openai_api_test: --build DIR is required" >&2; exit 2; }
PYTHON="${RAMI_TOOLS_VENV:-/opt/rami-tools-venv}/bin/python"
"$PYTHON" -c 'import openai' 2>/dev/null \
  || { echo "openai_api_test: no openai package in $PYTHON: run deploy/setup.sh --deps" >&2; exit 1; }
for tool in curl promtool; do
  command -v "$tool" >/dev/null \
    || { echo "openai_api_test: no $tool: run deploy/setup.sh --deps" >&2; exit 1; }
done
TMP="$(mktemp -d "${TMPDIR:-/tmp}/rami-openai.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# The tiny model with a chat template (its tokenizer is byte-level; its text is noise).
MODEL="$TMP/qwen3_dms_chat"
mkdir -p "$MODEL"
for f in config.json generation_config.json model.safetensors tokenizer.json; do
  ln -s "$ROOT/tests/golden/models/qwen3_dms/$f" "$MODEL/$f"
done
cat >"$MODEL/tokenizer_config.json" <<'JSON'
{"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512,
 "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"}
JSON

"$ROOT/deploy/launch-node.sh" --model "$MODEL" --cpu-workers 1 --tp 1 --port 0 --page-size 4 \
  --build "$BUILD" --logs "$TMP/logs" --coordinator-args "--served_model_name=tiny-dms" \
  -- "$PYTHON" "$ROOT/tests/integration/openai_api_test.py"
