#!/usr/bin/env bash
# What the processes cost (issue: host cost per step): the ~58M-parameter random Qwen3
# (tools/make_bench_model.py, dense) served by one CPU worker and a coordinator, and the same
# jobs through rami-generate alone, alternating, --runs times each (rami-bench overhead): n = 1
# and 16, greedy and temperature 1, 128 tokens a branch. Both sides get the same BLAS threads.
#   tools/bench_overhead.sh [--build DIR] [--runs 5] [--blas-threads 2] [-- extra rami-bench flags]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build RUNS=5 BLAS_THREADS=2
while (($#)); do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --blas-threads) BLAS_THREADS="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "bench_overhead: unknown flag $1" >&2; exit 2 ;;
  esac
done
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 tools/make_bench_model.py "$WORK/m58" --dms_window 0
export OPENBLAS_NUM_THREADS="$BLAS_THREADS"
# shellcheck disable=SC2016  # expanded by the inner shell
deploy/launch-node.sh --model "$WORK/m58" --cpu-workers 1 --tp 1 --port 0 --http-port 0 \
  --page-size 16 --kv-bytes $((512 << 20)) --build "$BUILD" --logs "$WORK/logs" \
  -- sh -c 'build="$0" model="$1" runs="$2"; shift 2
            "$build/tools/rami-bench" overhead --server="$RAMI_SERVER" --model_dir="$model" \
              --generate="$build/tools/rami-generate" --max_tokens=128 --runs="$runs" "$@"' \
     "$BUILD" "$WORK/m58" "$RUNS" "$@" | grep -v '^rami: '
