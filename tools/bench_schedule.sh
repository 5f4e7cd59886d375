#!/usr/bin/env bash
# The coordinator's own cost per step at scale, measured through the whole system: 4 CPU
# worker groups (TP 1, the tiny DMS model) and 64 jobs x n = 16 (1,024 branches, 256 a group)
# of 200 tokens sent at once by `rami-bench load`; then `rami info`'s means per group step:
# planning (mean_plan_ms: scheduler and plan packing) and planning + applying results
# (mean_schedule_ms: tokens to branches, detokenization, events). Prints both, the workers'
# step time, and the machine.
#   tools/bench_schedule.sh [--build DIR] [--runs 3]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build RUNS=3
while (($#)); do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    *) echo "bench_schedule: unknown flag $1" >&2; exit 2 ;;
  esac
done
LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT
echo "bench_schedule: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) threads"
for ((run = 1; run <= RUNS; run++)); do
  # shellcheck disable=SC2016  # expanded by the inner shell
  deploy/launch-node.sh --model tests/golden/models/qwen3_dms --cpu-workers 4 --tp 1 --port 0 \
    --http-port 0 --page-size 4 --kv-bytes $((256 << 20)) --build "$BUILD" --logs "$LOGS/node" \
    -- sh -c '"$0/tools/rami-bench" load --server="$RAMI_SERVER" --jobs=64 --rate=1000 \
                --n_mix=16 --max_tokens_mix=200 --abort_fraction=0 --json >"$1/load.json" &&
              "$0/tools/rami" info --server="$RAMI_SERVER" >"$1/info.json"' "$BUILD" "$LOGS" \
    >/dev/null 2>&1
  python3 - "$LOGS/load.json" "$LOGS/info.json" "$run" <<'PY'
import json, sys
load, info = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(f"run {sys.argv[3]}: {load['completed']}/{load['submitted']} jobs, "
      f"peak {info.get('peakRunningBranches', 0)} branches a group, {info['steps']} steps; "
      f"per group step: plan {info.get('meanPlanMs', 0):.3f} ms, "
      f"plan + apply {info.get('meanScheduleMs', 0):.2f} ms, workers {info.get('meanStepMs', 0):.1f} ms")
PY
done
