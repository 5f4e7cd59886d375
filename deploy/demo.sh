#!/usr/bin/env bash
# The README's main job: a local deployment (2 CPU workers in tensor parallel + coordinator)
# with the bundled tiny DMS model (random weights, byte-level tokenizer: the text is noise),
# and one best-of-8 job with majority voting over the last lowercase letter of each branch.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${RAMI_BUILD_DIR:-build}"
# shellcheck disable=SC2016  # $0 and $RAMI_SERVER expand in the inner shell
exec deploy/launch-node.sh --model tests/golden/models/qwen3_dms --cpu-workers 2 --tp 2 \
  --port 0 --page-size 4 --build "$BUILD" --logs "${RAMI_LOGS:-/tmp/rami-demo}" \
  -- sh -c '"$0" generate --server="$RAMI_SERVER" --n 8 --max_tokens 48 --seed 1 \
            --regex "([a-z])[^a-z]*\$" "What is the answer?"' "$BUILD/tools/rami"
