#!/usr/bin/env bash
# The README's main job: a local deployment (2 CPU workers in tensor parallel + coordinator)
# with the bundled tiny DMS model (random weights, byte-level tokenizer: the text is noise),
# and one best-of-8 job with majority voting over the last lowercase letter of each branch.
set -euo pipefail
cd "$(dirname "$0")/.."
exec deploy/run-local.sh --model tests/golden/models/qwen3_dms --tp 2 --port 0 --page-size 4 \
  --logs "${RAMI_LOGS:-/tmp/rami-demo}" \
  -- sh -c 'build/tools/rami generate --server="127.0.0.1:$(cat "$0")" --n 8 --max_tokens 48 \
            --seed 1 --regex "([a-z])[^a-z]*\$" "What is the answer?"' \
  "${RAMI_LOGS:-/tmp/rami-demo}/coordinator.port"
