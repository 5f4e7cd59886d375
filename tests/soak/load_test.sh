#!/usr/bin/env bash
# `rami-bench load` against a local deployment (2 groups x TP 1 CPU workers, the tiny DMS
# model): 40 jobs of mixed n and length, a third aborted soon after they are sent. Every job
# ends in exactly one bucket; none hangs or is lost; an aborted job ends ABORTED or completes
# (no other error); the report has its percentiles.
#   tests/soak/load_test.sh --build DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=build
if [ "${1:-}" = --build ]; then BUILD="$2"; fi
LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT
# shellcheck disable=SC2016  # $RAMI_SERVER expands in the inner shell
deploy/launch-node.sh --model tests/golden/models/qwen3_dms --cpu-workers 2 --tp 1 --port 0 \
  --http-port 0 --page-size 4 --build "$BUILD" --logs "$LOGS" \
  -- sh -c '"$0" load --server="$RAMI_SERVER" --jobs=40 --rate=40 --n_mix=1,4,16 \
            --max_tokens_mix=8,64 --abort_fraction=0.33 --abort_within_ms=30 --job_timeout_s=60 \
            --json' "$BUILD/tools/rami-bench" >"$LOGS/out.txt"
cat "$LOGS/out.txt"
python3 - "$LOGS/out.txt" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
r = json.loads(text[text.index("{"):])
ended = r["completed"] + r["aborted"] + r["hung"] + r["lost"] + sum(r["errors"].values())
assert r["submitted"] == 40, r
assert ended == r["submitted"], f"{ended} jobs accounted for of {r['submitted']}"
assert r["hung"] == 0 and r["lost"] == 0, r
assert r["errors"] == {}, r["errors"]
assert r["completed"] > 0 and r["tokens"] > 0, r
assert 0 < r["ttft_ms"]["p50"] <= r["ttft_ms"]["p99"] <= r["e2e_ms"]["p99"], r
print(f"load_test: ok ({r['completed']} completed, {r['aborted']} aborted)")
PY
