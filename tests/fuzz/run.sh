#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ (RAMI_FUZZ: sanitizers on every
# source; the main build/ stays GCC) and runs each for a while on its committed corpus.
#   tests/fuzz/run.sh [--seconds N] [--target T]... [--build-dir DIR]
# Defaults: 600 s per target, every target, build-fuzz/. Inputs found along the way go to
# DIR/corpus/<target> (not the committed tests/fuzz/corpus/<target>); a crash, hang (10 s per
# input), leak or out-of-memory is saved as tests/fuzz/crashes/<target>-<kind>-<hash> and the
# script exits 1 after running the other targets. RAMI_JOBS: build parallelism (default nproc).
set -euo pipefail
cd "$(dirname "$0")/../.."

ALL_TARGETS=(safetensors model_config tokenizer chat_template generate_request openai_request)
SECONDS_EACH=600
BUILD_DIR=build-fuzz
TARGETS=()
while (($#)); do
  case "$1" in
    --seconds) SECONDS_EACH="$2"; shift 2 ;;
    --target) TARGETS+=("$2"); shift 2 ;;
    --build-dir) BUILD_DIR="$2"; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--target T]... [--build-dir DIR]" \
         "(targets: ${ALL_TARGETS[*]})" >&2; exit 2 ;;
  esac
done
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "run.sh: unknown target $t" >&2; exit 2; }
done
command -v clang++ >/dev/null || { echo "run.sh: clang++ not found (deploy/setup.sh --deps)" >&2; exit 2; }

# The same sources at another path (a fresh clone) still hit ccache.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
start=$(date +%s)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DRAMI_FUZZ=ON -DBUILD_TESTING=OFF -DRAMI_ENABLE_CUDA=OFF >/dev/null
fi
build_targets=()
for t in "${TARGETS[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$BUILD_DIR" -j "${RAMI_JOBS:-$(nproc)}" --target "${build_targets[@]}"
echo "run.sh: fuzzers built in $(($(date +%s) - start)) s"

mkdir -p tests/fuzz/crashes "$BUILD_DIR/logs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
failed=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$BUILD_DIR/corpus/$t"
  log="$BUILD_DIR/logs/$t.log"
  echo "run.sh: fuzz_$t for ${SECONDS_EACH} s (log: $log)"
  # The first corpus folder receives new inputs; the committed seeds are only read.
  if "$BUILD_DIR/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="tests/fuzz/crashes/$t-" \
    "$BUILD_DIR/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done' "$log" | tr '\n' ' ' && echo
  else
    failed+=("$t")
    tail -n 60 "$log"
  fi
done
if ((${#failed[@]})); then
  echo "run.sh: FAILED: ${failed[*]}; inputs in tests/fuzz/crashes/:" >&2
  ls -l tests/fuzz/crashes >&2
  exit 1
fi
echo "run.sh: no crash in ${TARGETS[*]} ($(($(date +%s) - start)) s in all)"
