#!/usr/bin/env bash
# The prefix cache through the whole system (docs/prefix-cache.md): for each model, one CPU
# worker and a coordinator (deploy/launch-node.sh), then `rami-bench prefix`: a shared prefix
# marked with a cache boundary plus distinct questions at n = 8, with the cache skipped and on
# (prompt tokens prefilled, cached tokens, TTFT p50/p99), and the KV pages one cached prefix
# holds on the workers, dense and DMS, against the formula with the measured eviction rate.
#   tools/bench_prefix.sh [--build DIR] [--models tiny,m58]
# Models: the tiny DMS test model (context 512: a 400-token prefix) and the ~58M-parameter Qwen3
# tools/make_bench_model.py writes (W = 512, a 2048-token prefix; its cold pass runs on 20
# questions: each cold prefill takes seconds on a CPU). --models: which of the two (both).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build MODELS=tiny,m58
while (($#)); do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    *) echo "bench_prefix: unknown flag $1" >&2; exit 2 ;;
  esac
done
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "bench_prefix: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) threads"

# run NAME MODEL POLICY KV_BYTES BENCH_FLAGS...
run() {
  local name="$1" model="$2" policy="$3" kv="$4"
  shift 4
  echo "== $name (policy $policy)"
  # shellcheck disable=SC2016  # expanded by the inner shell
  deploy/launch-node.sh --model "$model" --cpu-workers 1 --tp 1 --port 0 --http-port 0 \
    --page-size 16 --kv-bytes "$kv" --policy "$policy" --build "$BUILD" --logs "$WORK/$name" \
    --coordinator-args "--prefix_cache_fraction=1 --max_prefill_chunk=2048 --max_step_tokens=4096" \
    -- sh -c '"$0/tools/rami-bench" prefix --server="$RAMI_SERVER" "$@"' "$BUILD" "$@" \
    | grep -v '^rami: '
}

if [[ ",$MODELS," == *,tiny,* ]]; then
  run tiny-dms tests/golden/models/qwen3_dms dms $((64 << 20)) --prefix_tokens=400
  run tiny-dense tests/golden/models/qwen3_dms dense $((64 << 20)) --prefix_tokens=400 \
    --questions=1
fi
if [[ ",$MODELS," == *,m58,* ]]; then
  python3 tools/make_bench_model.py "$WORK/m58" --dms_window 512
  # The traffic's kept roots fill the pool: the pages per prefix are measured on a fresh one.
  run m58-dms "$WORK/m58" dms $((1 << 30)) --prefix_tokens=2048 --questions_without_cache=20 \
    --fill=0
  run m58-dms-capacity "$WORK/m58" dms $((1 << 30)) --prefix_tokens=2048 --questions=1
  run m58-dense-capacity "$WORK/m58" dense $((1 << 30)) --prefix_tokens=2048 --questions=1
fi
