#!/usr/bin/env bash
# tests/gpu/run.sh's failure modes, in seconds and without a GPU: stub `cmake`, `ctest`,
# `nvidia-smi`, `compute-sanitizer` and `python3` on PATH, and a stub build whose test binaries
# and `rami-bench` act out each scenario (pipeline death under a flood of failing output, a
# vanished target, every test skipped, a hung phase, a compile error, no usable device, a
# benchmark built without CUDA, memcheck errors, the deadline). Each scenario checks run.sh's exit
# status and its summary: printed last, at most 60 lines, naming what failed.
#
#   tests/gpu/run_sh_test.sh        (ctest: GpuRunScript.FailureModes)
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT  # KEEP=1 keeps the scenarios' folders
STUBS="$WORK/bin"
mkdir -p "$STUBS"

# --- stubs (behaviour chosen by STUB_* variables) ----------------------------------------------
cat >"$STUBS/cmake" <<'EOF'
#!/usr/bin/env bash
# Configure: `cmake -S . -B DIR ...`; build: `cmake --build DIR ... -- -k 0`.
if [ "$1" = -S ]; then
  build="$4"
  mkdir -p "$build/bin"
  echo "CMAKE_GENERATOR:INTERNAL=Ninja" >"$build/CMakeCache.txt"
  if [ "${STUB_CONFIGURE:-ok}" = error ]; then
    printf 'CMake Error at CMakeLists.txt:60 (message):\n  rami: RAMI_REQUIRE_CUDA: these CUDA targets cannot be built: rami_worker_nccl\n\n-- Configuring incomplete, errors occurred!\n'
    exit 1
  fi
  engine="$build/bin/e_test"
  [ "${STUB_CONFIGURE:-ok}" = vanish ] && engine=-
  printf 'kernel k_test %s\nengine e_test %s\nbench rami-bench %s\ntool rami-generate %s\n' \
    "$build/bin/k_test" "$engine" "$build/bin/rami-bench" "$build/bin/rami-generate" \
    >"$build/gpu-targets.txt"
  echo "-- rami: CUDA 13.0 (stub)"
  exit 0
fi
build="$2"
case " $* " in *" -- -k 0 "*) ;; *) echo "stub cmake: the build must keep going (-k 0): $*"; exit 3 ;; esac
for exe in k_test e_test; do
  [ "${STUB_BUILD:-ok}" = compile_error ] && [ "$exe" = k_test ] && continue
  printf '#!/usr/bin/env bash\necho "[  PASSED  ] 3 tests."\n' >"$build/bin/$exe"
  chmod +x "$build/bin/$exe"
done
cp "$(dirname "$0")/fake-rami-bench" "$build/bin/rami-bench"
printf '#!/usr/bin/env bash\necho "memory plan: 79.19 GiB total, budget 71.27 GiB (stub)"\necho "host memory after load: 312.0 MiB anonymous resident"\necho "2 x 16 tokens in 0.1 s (320.0 tokens/s, cuda:0)"\n' >"$build/bin/rami-generate"
chmod +x "$build/bin/rami-generate"
if [ "${STUB_BUILD:-ok}" = compile_error ]; then
  printf '[1/3] Building CUDA object kernels/cuda/CMakeFiles/k.dir/rope.cu.o\nFAILED: kernels/cuda/CMakeFiles/k.dir/rope.cu.o \n/usr/local/cuda/bin/nvcc -Werror all-warnings -c rope.cu\nkernels/cuda/rope.cu(12): error: identifier "x" is undefined\n1 error detected\nninja: build stopped: subcommand failed.\n'
  exit 1
fi
echo "[3/3] Linking CXX executable bin/e_test"
EOF

cat >"$STUBS/fake-rami-bench" <<'EOF'
#!/usr/bin/env bash
if [ "$1" = devices ]; then
  if [ "${STUB_DEVICE:-ok}" = none ]; then
    echo "rami-bench devices: no usable CUDA device: cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version (driver 12.4, runtime 13.0)"
    exit 1
  fi
  echo "rami-bench devices: 1 CUDA device(s); driver 13.0, runtime 13.0"
  exit 0
fi
case "${STUB_BENCH:-ok}" in
  no_cuda) echo "rami-bench decode: built without CUDA, cuBLASLt or NCCL (not found at configure time) (--require_gpu: failing)"; exit 1 ;;
  hang) sleep 300 ;;
esac
for arg in "$@"; do case "$arg" in --json_out=*) echo '{"rows": []}' >"${arg#--json_out=}" ;; esac; done
for i in $(seq 1 200); do echo "row $i of the benchmark's tables"; done
printf '\n== rami-bench summary\nmachine: Stub GPU, 132 SMs\nengine dms ctx 32768, step ms (of copy) by batch: 1: 7.10 (80%%)\nresult: ok\n== end of summary\n'
EOF

cat >"$STUBS/ctest" <<'EOF'
#!/usr/bin/env bash
# Writes ctest's status lines to stdout and every test's output to LastTest.log.
build="$2"
mkdir -p "$build/Testing/Temporary"
log="$build/Testing/Temporary/LastTest.log"
: >"$log"
n=0
test_case() { # NAME STATUS OUTPUT-LINES...
  local name="$1" status="$2"
  shift 2
  n=$((n + 1))
  { echo "$n/3 Testing: $name"; echo "$n/3 Test: $name"; echo "Output:"; echo "----------"
    printf '%s\n' "$@"; echo "<end of output>"; echo "Test Passed."; } >>"$log"
  if [ "$status" = Passed ]; then
    printf '%d/3 Test #%d: %s ....................   Passed    0.01 sec\n' "$n" "$n" "$name"
  else
    printf '%d/3 Test #%d: %s ....................***%s    0.01 sec\n' "$n" "$n" "$name" "$status"
    [ "$status" = Failed ] && printf '%s\n' "$@"
  fi
}
flood() { for i in $(seq 1 6000); do echo "[ RUN      ] noise line $i"; done; }
case "${STUB_CTEST:-pass}" in
  pass)
    test_case Kernel.One Passed "[  PASSED  ] 1 test."
    test_case Kernel.Two Passed "[  PASSED  ] 1 test."
    test_case Engine.Three Passed "[  PASSED  ] 1 test." ;;
  fail_flood)
    test_case Kernel.One Passed "[  PASSED  ] 1 test."
    mapfile -t noise < <(flood)
    test_case Kernel.Bad Failed "${noise[@]}" "tests/gpu/x_gpu_test.cc:12: Failure" \
      "Expected equality of these values: rows 3 and 4" "${noise[@]}"
    test_case Engine.Crash "Exception: SegFault" "${noise[@]}" ;;
  skip_all)
    for t in Kernel.One Kernel.Two Engine.Three; do
      test_case "$t" Skipped "tests/gpu/a.cc:3: Skipped" "no usable CUDA device: cudaErrorNoDevice"
    done ;;
  more_gpus)
    test_case Kernel.One Passed "[  PASSED  ] 1 test."
    test_case Kernel.Two Passed "[  PASSED  ] 1 test."
    test_case "Engine.TwoRanks/llama  # GetParam() = \"llama\"" Skipped "tests/gpu/tp.cc:3: Skipped" \
      "needs 2 CUDA devices, the machine has 1" ;;
  hang) test_case Kernel.One Passed "[  PASSED  ] 1 test."; sleep 300 ;;
esac
[ "${STUB_CTEST:-pass}" = fail_flood ] && exit 8
exit 0
EOF

cat >"$STUBS/nvidia-smi" <<'EOF'
#!/usr/bin/env bash
echo "Stub GPU, 81559 MiB, 580.00"
EOF

cat >"$STUBS/compute-sanitizer" <<'EOF'
#!/usr/bin/env bash
if [ "${STUB_SANITIZER:-ok}" = errors ]; then
  echo "========= Invalid __global__ read of size 4 bytes"
  echo "=========     at RopeKernel+0x1f0 in rope.cu:40"
  echo "========= ERROR SUMMARY: 1 error"
  exit 99
fi
echo "========= ERROR SUMMARY: 0 errors"
EOF

cat >"$STUBS/python3" <<'EOF'
#!/usr/bin/env bash
# tools/bench_peer.py --out FILE ...: writes no rows (no PyTorch here); anything else: nothing.
[ "${1:-}" = tools/bench_peer.py ] && { echo "peer: no torch (stub)"; echo '{"rows": []}' >"$3"; }
exit 0
EOF
chmod +x "$STUBS"/*

# --- scenarios -------------------------------------------------------------------------------
FAILURES=0
# scenario NAME EXPECTED_RC MODE PATTERN... — runs run.sh (STUB_* and RAMI_* from the caller's
# environment), then checks the exit status, that the summary is printed last and is at most
# 60 lines, and that every PATTERN (grep -E) is in it.
scenario() {
  local name="$1" want_rc="$2" mode="$3"
  shift 3
  local dir="$WORK/$name"
  mkdir -p "$dir"
  local start=$SECONDS
  PATH="$STUBS:$PATH" RAMI_GPU_BUILD_DIR="$dir/build" RAMI_GPU_DEADLINE_S="${DEADLINE:-0}" \
    bash "$ROOT/tests/gpu/run.sh" "$mode" --out "$dir/out" >"$dir/stdout" 2>&1
  local rc=$? problems=()
  local summary="$dir/out/summary.txt"
  [ "$rc" = "$want_rc" ] || problems+=("exit $rc, expected $want_rc")
  if [ ! -s "$summary" ]; then
    problems+=("no summary.txt")
  else
    local lines
    lines=$(wc -l <"$summary")
    [ "$lines" -le 60 ] || problems+=("summary of $lines lines (> 60)")
    [ "$(tail -n "$lines" "$dir/stdout")" = "$(cat "$summary")" ] ||
      problems+=("the summary is not the last thing printed")
    for pattern in "$@"; do
      grep -Eq -- "$pattern" "$summary" || problems+=("summary lacks /$pattern/")
    done
  fi
  if [ "${#problems[@]}" = 0 ]; then
    echo "ok   $name ($((SECONDS - start)) s)"
  else
    FAILURES=$((FAILURES + 1))
    echo "FAIL $name: ${problems[*]}"
    echo "---- its output (last 40 lines):"
    tail -n 40 "$dir/stdout"
  fi
}

scenario all_pass 0 all '^configure +ok' '^build +ok' '^tests +ok' '3 passed, 0 failed, 0 skipped' \
  '^generate +ok' 'memory plan: 79.19 GiB' 'host memory after load: 312.0 MiB' \
  '^sanitize +ok' 'sanitize: k_test: ERROR SUMMARY: 0 errors' '^bench +ok' \
  'engine dms ctx 32768' 'result: PASSED'
STUB_CTEST=fail_flood scenario pipeline_flood 1 all 'result: FAILED \(tests\)' \
  '1 passed, 2 failed' 'Kernel.Bad \[Failed\] tests/gpu/x_gpu_test.cc:12: Expected equality' \
  'Engine.Crash \[Exception: SegFault\]' '^bench +ok'
STUB_CONFIGURE=error scenario configure_error 1 tests 'result: FAILED \(configure' \
  'RAMI_REQUIRE_CUDA: these CUDA targets cannot be built'
STUB_CONFIGURE=vanish scenario vanished_target 1 tests 'build: not built: e_test' \
  'result: FAILED \(build\)'
STUB_CTEST=skip_all scenario all_skipped 1 tests '0 passed, 0 failed, 3 skipped' \
  'a skipped GPU test fails the run' 'Kernel.One \[Skipped\] skipped: no usable CUDA device' \
  'result: FAILED \(tests\)'
STUB_CTEST=skip_all RAMI_REQUIRE_GPU=0 scenario all_skipped_allowed 0 tests '3 skipped' \
  'result: PASSED'
STUB_CTEST=more_gpus scenario more_gpus_skip 0 tests '1 skipped as they need more GPUs' \
  'Engine.TwoRanks/llama \[Skipped \(more GPUs\)\] needs 2 CUDA devices' 'result: PASSED'
STUB_CTEST=hang RAMI_GPU_TESTS_S=2 scenario hung_tests 1 all 'TIMED OUT' '^bench +ok' \
  'result: FAILED \(tests\)'
STUB_BUILD=compile_error scenario compile_error 1 tests 'not built: k_test' \
  'rope.cu.o: kernels/cuda/rope.cu\(12\): error: identifier' '^tests +ok' \
  'result: FAILED \(build\)'
STUB_DEVICE=none scenario no_device 1 tests 'device: .*cudaErrorInsufficientDriver' \
  'result: FAILED \(device'
STUB_DEVICE=none scenario build_mode_needs_no_gpu 0 build '^build +ok' 'result: PASSED'
STUB_BENCH=no_cuda scenario bench_without_cuda 1 bench 'bench: exit 1: .*built without CUDA' \
  'result: FAILED \(bench\)'
STUB_SANITIZER=errors scenario sanitizer_errors 1 sanitize 'ERROR SUMMARY: 1 error' \
  'Invalid __global__ read' 'result: FAILED \(sanitize\)'
start=$SECONDS
STUB_CTEST=hang STUB_BENCH=hang DEADLINE=30 scenario deadline 1 all 'TIMED OUT' \
  'bench: timed out'
[ $((SECONDS - start)) -le 40 ] || {
  FAILURES=$((FAILURES + 1))
  echo "FAIL deadline: took $((SECONDS - start)) s with RAMI_GPU_DEADLINE_S=30"
}

[ "$FAILURES" = 0 ] && echo "all scenarios passed"
[ "$FAILURES" = 0 ]
