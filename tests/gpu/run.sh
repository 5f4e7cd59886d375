#!/usr/bin/env bash
# The GPU run in one call: builds rami's GPU targets on a bare CUDA machine, runs the GPU tests,
# compute-sanitizer over the kernel tests and `rami-bench decode`, and prints last a summary of at
# most ~60 lines. GPU time is rare and short, so the run must give a true and complete answer:
# no phase can end the script early (no `set -e`, no pipeline whose death kills it), every phase
# runs under `timeout` with its own budget, the build keeps going past a compile error, and a run
# that tested nothing (no device, skipped tests, vanished targets) fails loudly.
#
#   tests/gpu/run.sh [MODE] [--out DIR]
#     build     configure + build the GPU targets; needs no GPU (deploy/check-gpu-deps.sh)
#     tests     build + the GPU tests (ctest -L gpu) + a golden model through LoadShard on cuda:0
#     bench     build + the PyTorch peer (tools/bench_peer.py) + rami-bench decode
#     sanitize  build + compute-sanitizer memcheck over the kernel tests
#     all       build + tests + sanitize + bench (the default)
#   --out DIR   where the logs, the benchmark JSON and summary.txt go (at most 8 files):
#               default $RAMI_GPU_OUT, else <build dir>/gpu-run
#
# A run can be split across calls on the same build folder (the build is incremental):
#   tests/gpu/run.sh tests --out "$OUT"   then   tests/gpu/run.sh bench --out "$OUT"
#
# Environment (all optional):
#   RAMI_GPU_BUILD_DIR   build folder (build-gpu)
#   RAMI_REQUIRE_GPU     1 (default): no GPU, a GPU test that skips (except one that needs more
#                        GPUs than the machine has) and a missing CUDA/NCCL/engine target are
#                        failures. 0: debugging on a machine without them.
#   RAMI_GPU_TESTS       ctest -R regex: run only the matching GPU tests
#   RAMI_GPU_JOBS        build and test parallelism (nproc)
#   Budgets in seconds, each measured from its phase's own start: RAMI_GPU_CONFIGURE_S (90),
#   RAMI_GPU_BUILD_S (360), RAMI_GPU_TESTS_S (240), RAMI_GPU_TEST_TIMEOUT_S (120, one test),
#   RAMI_GPU_GENERATE_S (120), RAMI_GPU_SANITIZE_S (180), RAMI_GPU_PEER_S (90),
#   RAMI_GPU_BENCH_S (200);
#   RAMI_GPU_DEADLINE_S (570): the whole run ends by then, phases shortened to fit, so the
#   summary comes back inside a 600-second remote call; 0 = no deadline.
#
# Needs only CUDA (nvcc, cudart, cuBLASLt, NCCL), CMake >= 3.25, ninja or make, a C++20 compiler
# and this repository: Abseil, GoogleTest and nlohmann_json come from third_party/gpu-deps when
# the system lacks them; NCCL from the CUDA tree, else from python3's nvidia-nccl wheel.
# Exit status: 0 when every phase the mode asks for passed; 1 otherwise.
set -u
cd "$(dirname "$0")/../.." || exit 1
export PATH="$PATH:/usr/local/cuda/bin"
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}" # NCCL explains its own failures in the test logs

MODE=all
OUT_DIR="${RAMI_GPU_OUT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    build | tests | bench | sanitize | all) MODE="$1" ;;
    --out) OUT_DIR="${2:-}"; shift ;;
    --out=*) OUT_DIR="${1#--out=}" ;;
    *) echo "usage: tests/gpu/run.sh [build|tests|bench|sanitize|all] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
BUILD_DIR="${RAMI_GPU_BUILD_DIR:-build-gpu}"
OUT_DIR="${OUT_DIR:-$BUILD_DIR/gpu-run}"
REQUIRE_GPU="${RAMI_REQUIRE_GPU:-1}"
export RAMI_REQUIRE_GPU="$REQUIRE_GPU" # the GPU tests fail instead of skipping without a device
JOBS="${RAMI_GPU_JOBS:-$(nproc 2>/dev/null || echo 4)}"
DEADLINE="${RAMI_GPU_DEADLINE_S:-570}"
mkdir -p "$OUT_DIR" || exit 1
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
SUMMARY_FILE="$OUT_DIR/summary.txt"
BUILD_LOG="$OUT_DIR/build.log" # configure + build
TESTS_LOG="$OUT_DIR/tests.log" # ctest's output, then every test's full output
SANITIZE_LOG="$OUT_DIR/sanitize.log"
BENCH_LOG="$OUT_DIR/bench.log" # the peer's output, then rami-bench's
: >"$BUILD_LOG"
START=$SECONDS

want() { # want PHASE: does MODE ask for it
  case "$MODE:$1" in
    *:build | all:* | tests:tests | bench:bench | sanitize:sanitize) return 0 ;;
    *) return 1 ;;
  esac
}
needs_gpu() { [ "$MODE" != build ] && [ "$REQUIRE_GPU" = 1 ]; }

# Summary lines per phase, kept in order; RESULT_* say ok / FAILED / skipped per phase.
declare -A RESULT=() SECONDS_OF=()
DETAILS=()
FAILED_PHASES=()
note() { DETAILS+=("$1"); }
fail() { # fail PHASE: the run fails because of this phase
  RESULT[$1]=FAILED
  case " ${FAILED_PHASES[*]-} " in *" $1 "*) ;; *) FAILED_PHASES+=("$1") ;; esac
}

# budget SECONDS: a phase's budget, shortened to what the deadline leaves (20 s are kept for
# the summary); 0 when nothing is left.
budget() {
  local value="$1"
  if [ "$DEADLINE" -gt 0 ]; then
    local left=$((DEADLINE - 20 - (SECONDS - START)))
    [ "$left" -lt "$value" ] && value=$left
  fi
  [ "$value" -lt 0 ] && value=0
  echo "$value"
}

# run_phase PHASE BUDGET LOG CMD...: runs CMD under `timeout`, its output appended to LOG.
# Sets PHASE_RC (124 when it ran out of time) and SECONDS_OF[PHASE].
run_phase() {
  local phase="$1" limit="$2" log="$3"
  shift 3
  local start=$SECONDS
  printf '== %s (at %ds, budget %ds)\n' "$phase" $((SECONDS - START)) "$limit"
  if [ "$limit" -le 0 ]; then
    PHASE_RC=124
    echo "no time left before the deadline (RAMI_GPU_DEADLINE_S=$DEADLINE)" >>"$log"
  else
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    PHASE_RC=$?
    [ "$PHASE_RC" = 137 ] && PHASE_RC=124
  fi
  SECONDS_OF[$phase]=$((${SECONDS_OF[$phase]:-0} + SECONDS - start))
}

# --- machine -----------------------------------------------------------------------------------
MACHINE="nvidia-smi: not available"
if command -v nvidia-smi >/dev/null; then
  MACHINE="$(timeout 30 nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader 2>&1 | head -n 4 | paste -sd ';' -)"
  [ -n "$MACHINE" ] || MACHINE="nvidia-smi: no output"
fi
echo "== machine: $MACHINE; $(nproc 2>/dev/null) cores; mode $MODE; out $OUT_DIR"

# --- configure ---------------------------------------------------------------------------------
CONFIG_ARGS=(-DCMAKE_BUILD_TYPE=Release -DRAMI_WITH_GRPC=OFF -DCMAKE_CUDA_ARCHITECTURES=90a)
# RAMI_REQUIRE_CUDA: a missing nvcc, cuBLASLt, NCCL or CUDA engine target is a configure error
# instead of GPU targets that silently vanish.
[ "$REQUIRE_GPU" = 1 ] && CONFIG_ARGS+=(-DRAMI_REQUIRE_CUDA=ON)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] && command -v ninja >/dev/null; then
  CONFIG_ARGS+=(-G Ninja)
fi
if [ ! -e /usr/local/cuda/include/nccl.h ] && [ ! -e /usr/include/nccl.h ] &&
  command -v python3 >/dev/null; then
  # The folder holding include/nccl.h and lib/libnccl.so.2 in python3's nvidia-nccl wheel.
  NCCL_ROOT_DIR="$(timeout 60 python3 - 2>/dev/null <<'PY'
import glob, os, site
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for header in glob.glob(os.path.join(root, "nvidia", "**", "nccl.h"), recursive=True):
        print(os.path.dirname(os.path.dirname(header)))
        raise SystemExit
PY
)"
  [ -n "$NCCL_ROOT_DIR" ] && CONFIG_ARGS+=("-DNCCL_ROOT=$NCCL_ROOT_DIR")
fi
run_phase configure "$(budget "${RAMI_GPU_CONFIGURE_S:-90}")" "$BUILD_LOG" \
  cmake -S . -B "$BUILD_DIR" "${CONFIG_ARGS[@]}"
CONFIGURED=0
if [ "$PHASE_RC" = 0 ]; then
  CONFIGURED=1
  RESULT[configure]=ok
  grep -E '^-- rami:' "$BUILD_LOG" | head -n 6
elif [ "$PHASE_RC" = 124 ]; then
  fail configure
  note "configure: timed out"
else
  fail configure
  # CMake's error heading and the message under it.
  while IFS= read -r line; do note "  $line"; done < <(grep -A 3 -E '^CMake Error' "$BUILD_LOG" |
    grep -vE '^--$|^ *$' | head -n 8)
fi

# --- build -------------------------------------------------------------------------------------
# The manifest of what the GPU run needs (written by tests/CMakeLists.txt): `kind name path`
# lines, kind = kernel (kernel tests: also run under compute-sanitizer), engine (other GPU
# tests) or bench (rami-bench).
MANIFEST="$BUILD_DIR/gpu-targets.txt"
declare -A TARGET_PATH=() TARGET_KIND=()
TARGET_NAMES=()
BUILT=0
if [ "$CONFIGURED" = 1 ]; then
  KEEP_GOING=(-k)
  grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null &&
    KEEP_GOING=(-k 0)
  run_phase build "$(budget "${RAMI_GPU_BUILD_S:-360}")" "$BUILD_LOG" \
    cmake --build "$BUILD_DIR" -j "$JOBS" --target rami_gpu_tests rami-bench rami-generate \
    -- "${KEEP_GOING[@]}"
  BUILD_RC=$PHASE_RC
  if [ -f "$MANIFEST" ]; then
    while read -r kind name path; do
      [ -n "${name:-}" ] || continue
      TARGET_NAMES+=("$name")
      TARGET_KIND[$name]=$kind
      TARGET_PATH[$name]=$path
    done <"$MANIFEST"
  fi
  MISSING=()
  for name in "${TARGET_NAMES[@]}"; do
    [ -x "${TARGET_PATH[$name]}" ] || MISSING+=("$name")
  done
  if [ "${#TARGET_NAMES[@]}" = 0 ]; then
    fail build
    note "build: no GPU targets defined ($MANIFEST missing or empty): CUDA, NCCL or the engine not found at configure time"
  elif [ "$BUILD_RC" = 0 ] && [ "${#MISSING[@]}" = 0 ]; then
    RESULT[build]=ok
    BUILT=1
  else
    fail build
    [ "$BUILD_RC" = 124 ] && note "build: timed out"
    [ "${#MISSING[@]}" -gt 0 ] && note "build: not built: ${MISSING[*]}"
    # Each failed step (ninja: FAILED: <output>; make: *** [<target>] Error) with its first error.
    # The line after ninja's FAILED: is the command (its -Werror is no error line).
    while IFS= read -r line; do note "  $line"; done < <(awk '
      /^FAILED: / { if (step != "" && first == "") print step ": (no error line)";
                    step = ($2 ~ /^\[code=/) ? $3 : $2; first = ""; command = 1; next }
      command { command = 0; next }
      /\*\*\* \[.*\] Error/ && step == "" { print $0; next }
      step != "" && first == "" && /(error|Error)[: ]|undefined reference/ {
        first = $0; print step ": " first }
      END { if (step != "" && first == "") print step ": (no error line)" }' "$BUILD_LOG" |
      head -n 8)
    [ "${#MISSING[@]}" -lt "${#TARGET_NAMES[@]}" ] && BUILT=1 # run what did build
  fi
fi
built() { [ -n "${TARGET_PATH[$1]:-}" ] && [ -x "${TARGET_PATH[$1]}" ]; }
BENCH_BIN="" GENERATE_BIN=""
for name in "${TARGET_NAMES[@]}"; do
  [ "${TARGET_KIND[$name]}" = bench ] && built "$name" && BENCH_BIN="${TARGET_PATH[$name]}"
  [ "${TARGET_KIND[$name]}" = tool ] && built "$name" && GENERATE_BIN="${TARGET_PATH[$name]}"
done

# --- the device as rami sees it ----------------------------------------------------------------
DEVICE_OK=0
if [ "$MODE" != build ]; then
  if [ -n "$BENCH_BIN" ]; then
    DEVICE_LINE="$(timeout 60 "$BENCH_BIN" devices 2>&1 | head -n 4 | paste -sd ';' -)"
    if timeout 60 "$BENCH_BIN" devices >/dev/null 2>&1; then DEVICE_OK=1; fi
  else
    DEVICE_LINE="rami-bench not built: the device was not probed"
  fi
  note "device: $DEVICE_LINE"
  if [ "$DEVICE_OK" = 0 ] && needs_gpu; then
    fail device
    note "  no usable CUDA device: every GPU phase below fails (RAMI_REQUIRE_GPU=0 to debug)"
  fi
fi

# --- GPU tests ---------------------------------------------------------------------------------
# parse_tests CTEST_LOG LAST_TEST_LOG: one `status|name|first error line` per test that did not
# pass, from ctest's status lines and each test's output in LastTest.log.
parse_tests() {
  awk -v details="$2" -v root="$PWD/" '
    BEGIN {
      # LastTest.log: blocks "k/n Testing: NAME" ... "Output:" "----" <output> "<end of output>".
      while ((getline line < details) > 0) {
        # Names are their first word: parameterized gtest names go on with "  # GetParam() = ...".
        if (line ~ /^[0-9]+\/[0-9]+ Testing: /) { split(line, w, " "); name = w[3]; inout = 0; loc = ""; continue }
        if (line == "Output:") { inout = 1; getline line < details; continue }
        if (line == "<end of output>") { inout = 0; continue }
        if (!inout || name == "") continue
        if (line ~ /needs [0-9]+ CUDA devices/) needs[name] = line
        if (loc != "" && line == "Failed") continue  # FAIL() prints "Failed", then its message
        if (loc != "" && !(name in first)) { first[name] = loc " " line; continue }
        if (name in first) continue
        if (line ~ /: Failure$/) { loc = line; sub(/: Failure$/, ":", loc); continue }
        if (line ~ /: Skipped$/) { loc = "skipped:"; continue }
        if (line ~ /[Ee]rror|FAILED|Check failed|terminate called|what\(\)|Aborted|[Ss]egmentation/) first[name] = line
        else if (line !~ /^\[/ && line != "") last[name] = line
      }
    }
    /^ *[0-9]+\/[0-9]+ Test +#[0-9]+: / {
      line = $0
      sub(/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: /, "", line)
      split(line, parts, " ")
      name = parts[1]
      if (line ~ /   Passed /) next
      status = line; sub(/^[^*]*\*\*\*/, "", status); sub(/ +[0-9.]+ sec.*$/, "", status)
      if (status == "Skipped" && (name in needs)) status = "Skipped (more GPUs)"
      why = (name in first) ? first[name] : ((name in last) ? last[name] : "(no output)")
      if (status == "Skipped (more GPUs)") why = needs[name]
      if (index(why, root) == 1) why = substr(why, length(root) + 1)
      print status "|" name "|" why
    }' "$1"
}
if want tests; then
  : >"$TESTS_LOG"
  if [ "$BUILT" = 1 ]; then
    CTEST_ARGS=(-L gpu -j "$JOBS" --timeout "${RAMI_GPU_TEST_TIMEOUT_S:-120}" --output-on-failure
      --no-tests=error)
    [ -n "${RAMI_GPU_TESTS:-}" ] && CTEST_ARGS+=(-R "$RAMI_GPU_TESTS")
    rm -f "$BUILD_DIR/Testing/Temporary/LastTest.log"
    run_phase tests "$(budget "${RAMI_GPU_TESTS_S:-240}")" "$TESTS_LOG" \
      ctest --test-dir "$BUILD_DIR" "${CTEST_ARGS[@]}"
    TESTS_RC=$PHASE_RC
    LAST_TEST_LOG="$BUILD_DIR/Testing/Temporary/LastTest.log"
    PASSED=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*   Passed ' "$TESTS_LOG")
    mapfile -t NOT_PASSED < <(parse_tests "$TESTS_LOG" "$LAST_TEST_LOG")
    FAILED_N=0 SKIPPED_N=0 MORE_GPUS_N=0
    for row in "${NOT_PASSED[@]}"; do
      case "$row" in
        "Skipped (more GPUs)|"*) MORE_GPUS_N=$((MORE_GPUS_N + 1)) ;;
        "Skipped|"*) SKIPPED_N=$((SKIPPED_N + 1)) ;;
        *) FAILED_N=$((FAILED_N + 1)) ;;
      esac
    done
    TEST_LINE="$PASSED passed, $FAILED_N failed, $SKIPPED_N skipped"
    [ "$MORE_GPUS_N" -gt 0 ] && TEST_LINE+=", $MORE_GPUS_N skipped as they need more GPUs"
    RESULT[tests]=ok
    if [ "$TESTS_RC" = 124 ]; then
      fail tests
      TEST_LINE+="; TIMED OUT: the phase was killed, the tests after these never ran"
    fi
    [ "$FAILED_N" -gt 0 ] && fail tests
    if [ "$SKIPPED_N" -gt 0 ] && [ "$REQUIRE_GPU" = 1 ]; then
      fail tests
      TEST_LINE+="; a skipped GPU test fails the run (RAMI_REQUIRE_GPU=1)"
    fi
    if [ $((PASSED + FAILED_N + SKIPPED_N + MORE_GPUS_N)) = 0 ] && [ "$TESTS_RC" != 124 ]; then
      fail tests
      TEST_LINE+="; no GPU test ran"
    fi
    [ "$TESTS_RC" != 0 ] && [ "$TESTS_RC" != 124 ] && [ "$FAILED_N" = 0 ] && {
      fail tests
      TEST_LINE+="; ctest exited $TESTS_RC: $(grep -m1 -iE 'error|no tests' "$TESTS_LOG")"
    }
    note "tests: $TEST_LINE"
    shown=0
    for row in "${NOT_PASSED[@]}"; do
      [ "$shown" -ge 15 ] && { note "  ... $((${#NOT_PASSED[@]} - shown)) more in tests.log"; break; }
      IFS='|' read -r status name why <<<"$row"
      note "  $name [$status] ${why:0:140}"
      shown=$((shown + 1))
    done
    # Every test's full output after ctest's own (LastTest.log stays in the build folder too).
    [ -f "$LAST_TEST_LOG" ] && { echo; echo "==== LastTest.log"; cat "$LAST_TEST_LOG"; } >>"$TESTS_LOG"
  else
    fail tests
    note "tests: not run (nothing was built)"
  fi
fi

# --- one model through the worker's own load path on the device -------------------------------
# rami-generate loads a golden model with LoadShard on cuda:0 (the memory plan, the step buffers'
# largest step, the pool) and generates: the plan and the host memory the load left go into the
# summary.
if want tests; then
  if [ -z "$GENERATE_BIN" ]; then
    fail generate
    note "generate: rami-generate not built"
  else
    run_phase generate "$(budget "${RAMI_GPU_GENERATE_S:-120}")" "$TESTS_LOG" "$GENERATE_BIN" \
      --model=tests/golden/models/qwen3_dms_hd64 --device=cuda:0 --prompt_ids='1,2,3,4,5;6,7' \
      --max_tokens=16
    if [ "$PHASE_RC" = 0 ]; then
      RESULT[generate]=ok
    else
      fail generate
      note "generate: exit $PHASE_RC: $(grep -m1 'rami-generate' "$TESTS_LOG" | cut -c1-160)"
    fi
    while IFS= read -r line; do note "  ${line:0:200}"; done < <(grep -E \
      '^(memory plan|host memory after load|[0-9]+ x [0-9]+ tokens)' "$TESTS_LOG" | tail -n 3)
  fi
fi

# --- compute-sanitizer over the kernel tests ---------------------------------------------------
if want sanitize; then
  : >"$SANITIZE_LOG"
  SANITIZER="$(command -v compute-sanitizer || true)"
  if [ -z "$SANITIZER" ]; then
    fail sanitize
    note "sanitize: compute-sanitizer not found (CUDA toolkit's bin/)"
  else
    RESULT[sanitize]=ok
    SANITIZE_END=$((SECONDS + $(budget "${RAMI_GPU_SANITIZE_S:-180}")))
    for name in "${TARGET_NAMES[@]}"; do
      [ "${TARGET_KIND[$name]}" = kernel ] || continue
      if ! built "$name"; then
        fail sanitize
        note "sanitize: $name not built"
        continue
      fi
      echo "==== $name" >>"$SANITIZE_LOG"
      run_phase sanitize $((SANITIZE_END - SECONDS)) "$SANITIZE_LOG" "$SANITIZER" \
        --tool memcheck --error-exitcode 99 --print-limit 20 "${TARGET_PATH[$name]}" --gtest_brief=1
      errors="$(grep -E 'ERROR SUMMARY' "$SANITIZE_LOG" | tail -n 1 | sed 's/^=* *//')"
      case "$PHASE_RC" in
        0) note "sanitize: $name: ${errors:-no error summary}" ;;
        124) fail sanitize; note "sanitize: $name: timed out (RAMI_GPU_SANITIZE_S or the deadline)" ;;
        99)
          fail sanitize
          note "sanitize: $name: ${errors}"
          note "  $(grep -m1 -E '^========= (Invalid|Program hit|Uninitialized|Race|Leaked)' \
            "$SANITIZE_LOG")"
          ;;
        *) fail sanitize; note "sanitize: $name: exit $PHASE_RC (a test failed under memcheck)" ;;
      esac
    done
  fi
fi

# --- benchmark: the PyTorch peer, then rami-bench decode ---------------------------------------
if want bench; then
  : >"$BENCH_LOG"
  PEER_ARGS=()
  if command -v python3 >/dev/null; then
    PEER_BUDGET="$(budget "${RAMI_GPU_PEER_S:-90}")"
    rm -f "$OUT_DIR/peer.json"
    # The transformers loop gets the peer's budget less ~30 s for PyTorch's start and SDPA rows.
    run_phase peer "$PEER_BUDGET" "$BENCH_LOG" python3 tools/bench_peer.py \
      --out "$OUT_DIR/peer.json" --hf_budget_s $((PEER_BUDGET > 50 ? PEER_BUDGET - 30 : 0))
    if [ -s "$OUT_DIR/peer.json" ]; then
      PEER_ARGS=("--peer=$OUT_DIR/peer.json")
      RESULT[peer]=ok
    else
      RESULT[peer]="no figures (exit $PHASE_RC; see bench.log)"
    fi
  fi
  if [ -z "$BENCH_BIN" ]; then
    fail bench
    note "bench: rami-bench not built"
  else
    BENCH_BUDGET="$(budget "${RAMI_GPU_BENCH_S:-200}")"
    REQUIRE_FLAG=()
    [ "$REQUIRE_GPU" = 1 ] && REQUIRE_FLAG=(--require_gpu)
    rm -f "$OUT_DIR/bench.json"
    # The engine rows stop (saying so) ~60 s before the phase's end: the kernel rows take ~30 s.
    run_phase bench "$BENCH_BUDGET" "$BENCH_LOG" "$BENCH_BIN" decode "${REQUIRE_FLAG[@]}" \
      "${PEER_ARGS[@]}" --engine=on --engine_budget_s=$((BENCH_BUDGET > 90 ? BENCH_BUDGET - 60 : 30)) \
      --json_out="$OUT_DIR/bench.json"
    case "$PHASE_RC" in
      0) RESULT[bench]=ok ;;
      124) fail bench; note "bench: timed out (RAMI_GPU_BENCH_S or the deadline)" ;;
      *) fail bench; note "bench: exit $PHASE_RC: $(grep -m1 -E 'rami-bench' "$BENCH_LOG")" ;;
    esac
    # rami-bench ends with a short table between these markers; the summary carries it.
    grep -q '^== rami-bench summary' "$BENCH_LOG" && note "bench summary (full tables: bench.log, bench.json):"
    while IFS= read -r line; do note "  $line"; done < <(awk '
      /^== rami-bench summary/ { on = 1; n = 0; next } /^== end of summary/ { on = 0 }
      on && n < 18 { print; n++ }' "$BENCH_LOG")
  fi
fi

# --- summary (last, at most ~60 lines; also in summary.txt) ------------------------------------
{
  echo "== summary: tests/gpu/run.sh $MODE, RAMI_REQUIRE_GPU=$REQUIRE_GPU, $((SECONDS - START)) s"
  echo "machine: $MACHINE"
  for phase in configure build device tests generate sanitize peer bench; do
    [ -n "${RESULT[$phase]:-}" ] || continue
    [ "$phase" = device ] && continue
    printf '%-9s %s (%s s)\n' "$phase" "${RESULT[$phase]}" "${SECONDS_OF[$phase]:-0}"
  done
  [ "${#DETAILS[@]}" -gt 0 ] && printf '%s\n' "${DETAILS[@]}" | head -n 48
  echo "logs: $OUT_DIR ($(find "$OUT_DIR" -maxdepth 1 -type f -printf '%f\n' | sort | paste -sd ' ' -))"
  if [ "${#FAILED_PHASES[@]}" = 0 ]; then
    echo "result: PASSED"
  else
    echo "result: FAILED (${FAILED_PHASES[*]})"
  fi
} >"$SUMMARY_FILE"
cat "$SUMMARY_FILE"
[ "${#FAILED_PHASES[@]}" = 0 ]
