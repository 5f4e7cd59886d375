#!/usr/bin/env bash
# The HTTP API with clients nobody here wrote: the official `openai` Python package (from the
# tools venv deploy/setup.sh makes), curl and promtool, against a local deployment of the tiny
# DMS model (one CPU worker) given a ChatML chat template.
#   tests/integration/openai_api_test.sh --build DIR
set -euo pipefail
# shellcheck source=/dev/null  # tests/integration/real_client_test_env.sh
source "$(dirname "$0")/real_client_test_env.sh"
real_client_test_env openai_api_test "$@"
for tool in curl promtool; do
  command -v "$tool" >/dev/null \
    || { echo "openai_api_test: no $tool: run deploy/setup.sh --deps" >&2; exit 1; }
done

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
