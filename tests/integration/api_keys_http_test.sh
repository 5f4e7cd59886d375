#!/usr/bin/env bash
# API keys on the HTTP API and in the `rami` CLI, against a local deployment started by
# deploy/launch-node.sh --api-keys-file (one CPU worker, the tiny DMS model): the official
# `openai` package with a wrong and a right key, per-key limits as 429, /health open, /metrics
# for admin keys only; `rami info` with the key from --api_key or RAMI_API_KEY, worker
# addresses only for an admin key.
#   tests/integration/api_keys_http_test.sh --build DIR
set -euo pipefail
# shellcheck source=/dev/null  # tests/integration/real_client_test_env.sh
source "$(dirname "$0")/real_client_test_env.sh"
real_client_test_env api_keys_http_test "$@"

# alice: 1 job, 4 branches at once; slow: 1 request per second; ops: admin (given by hash).
OPS_KEY="ops-key-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
cat >"$TMP/keys.jsonl" <<JSON
# api_keys_http_test.sh
{"name": "alice", "key": "alice-key-0123456789abcdef", "max_jobs": 1, "max_branches": 4, "rps": 0}
{"name": "slow", "key": "slow-key-0123456789abcdef", "rps": 1, "burst": 1}
{"name": "ops", "sha256": "$(printf '%s' "$OPS_KEY" | sha256sum | cut -d' ' -f1)", "admin": true}
JSON

RAMI_CLI="$BUILD/tools/rami" RAMI_OPS_KEY="$OPS_KEY" "$ROOT/deploy/launch-node.sh" \
  --model "$ROOT/tests/golden/models/qwen3_dms" --cpu-workers 1 --tp 1 --port 0 --page-size 4 \
  --build "$BUILD" --logs "$TMP/logs" --api-keys-file "$TMP/keys.jsonl" \
  -- "$PYTHON" "$ROOT/tests/integration/api_keys_http_test.py"
