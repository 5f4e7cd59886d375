#!/usr/bin/env bash
# Builds rami with CUDA, runs every GPU test (ctest label `gpu`) and `rami-bench decode`, and
# prints a summary — in one call, in under 5 minutes on a 16-core machine with one H200.
#
#   tests/gpu/run.sh                       # build dir: build-gpu (RAMI_GPU_BUILD_DIR overrides)
#   RAMI_GPU_TESTS='Rope|KvWrite' RAMI_GPU_BENCH=0 tests/gpu/run.sh
#                                          # a quick rerun: only the tests matching the ctest -R
#                                          # regex, no peers and no benchmark
#
# Needs only CUDA (nvcc, cudart, cuBLASLt), CMake ≥ 3.25, ninja or make, and a C++20 compiler.
# No gRPC (RAMI_WITH_GRPC=OFF); Abseil, GoogleTest and nlohmann_json come from the system when
# installed, else from the sources shipped in third_party/gpu-deps (cmake/RamiGpuDeps.cmake).
# NCCL comes from the CUDA tree, else from PyTorch's nvidia-nccl wheel when python3 has one.
# Only the GPU test targets and rami-bench are built. The benchmark's PyTorch peer
# (tools/bench_peer.py) runs when python3 has torch and a GPU. Exit status: 0 when every GPU
# test passed (or skipped without a device) and the benchmark ran; 1 otherwise.
# deploy/check-gpu-deps.sh runs this script with the system's libraries hidden.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/cuda/bin:$PATH"
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"  # NCCL explains its own failures in the test logs
BUILD_DIR="${RAMI_GPU_BUILD_DIR:-build-gpu}"
LOG_DIR="$BUILD_DIR/gpu-run"
START=$SECONDS
phase() { printf '== %s (at %ds)\n' "$1" $((SECONDS - START)); }

phase "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.memory \
  --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not available (no GPU?)"

phase "configure"
CONFIG_ARGS=(-DCMAKE_BUILD_TYPE=Release -DRAMI_WITH_GRPC=OFF -DCMAKE_CUDA_ARCHITECTURES=90a)
if command -v ninja >/dev/null; then CONFIG_ARGS+=(-G Ninja); fi
if [ ! -e /usr/local/cuda/include/nccl.h ] && [ ! -e /usr/include/nccl.h ]; then
  # The folder holding include/nccl.h and lib/libnccl.so.2 in python3's nvidia-nccl wheel.
  NCCL_ROOT_DIR="$(python3 - 2>/dev/null <<'PY' || true
import glob, os, site
for root in site.getsitepackages() + [site.getusersitepackages()]:
    for header in glob.glob(os.path.join(root, "nvidia", "**", "nccl.h"), recursive=True):
        print(os.path.dirname(os.path.dirname(header)))
        raise SystemExit
PY
)"
  if [ -n "$NCCL_ROOT_DIR" ]; then CONFIG_ARGS+=("-DNCCL_ROOT=$NCCL_ROOT_DIR"); fi
fi
mkdir -p "$LOG_DIR"
if ! cmake -S . -B "$BUILD_DIR" "${CONFIG_ARGS[@]}" >"$LOG_DIR/configure.log" 2>&1; then
  tail -40 "$LOG_DIR/configure.log"
  exit 1
fi
grep -E "^-- rami:" "$LOG_DIR/configure.log" || true

phase "build (GPU tests + rami-bench)"
if ! cmake --build "$BUILD_DIR" -j "$(nproc)" --target rami_gpu_tests rami-bench \
  >"$LOG_DIR/build.log" 2>&1; then
  grep -E "error|Error" -A3 "$LOG_DIR/build.log" | head -60
  exit 1
fi

phase "GPU tests"
TESTS_OK=1
# Each gtest case is its own process (gtest_discover_tests); they share the one GPU.
CTEST_ARGS=(-L gpu)
if [ -n "${RAMI_GPU_TESTS:-}" ]; then CTEST_ARGS+=(-R "$RAMI_GPU_TESTS"); fi
ctest --test-dir "$BUILD_DIR" "${CTEST_ARGS[@]}" -j 8 --timeout 120 --output-on-failure \
  >"$LOG_DIR/ctest.log" 2>&1 || TESTS_OK=0
grep -E "tests passed|tests failed|\*\*\*Failed|\*\*\*Timeout|Not Run|Skipped" \
  "$LOG_DIR/ctest.log" | tail -40 || true
if [ "$TESTS_OK" = 0 ]; then
  echo "-- failures (full log: $LOG_DIR/ctest.log):"
  grep -E "Failure|error|FAILED|Expected|Which is|actual|  what" "$LOG_DIR/ctest.log" | head -60
fi

BENCH_OK=1
if [ "${RAMI_GPU_BENCH:-1}" = 0 ]; then
  phase "summary (RAMI_GPU_BENCH=0: no peers, no benchmark)"
  grep -E "tests passed|tests failed" "$LOG_DIR/ctest.log" || echo "ctest: no summary line"
  echo "total: $((SECONDS - START)) s"
  if [ "$TESTS_OK" = 1 ]; then exit 0; fi
  exit 1
fi

phase "peers: PyTorch SDPA, transformers Qwen3 loop (tools/bench_peer.py)"
PEER_ARGS=()
rm -f "$LOG_DIR/peer.json"
# The transformers loop gets what is left of a 3.5-minute mark (the 5-minute budget keeps ~1.5
# minutes for rami-bench: ~25 s of kernel rows, the rest for its engine rows); 0 skips it.
HF_BUDGET=$((210 - (SECONDS - START)))
if [ "$HF_BUDGET" -lt 20 ]; then HF_BUDGET=0; fi
if command -v python3 >/dev/null &&
  python3 tools/bench_peer.py --out "$LOG_DIR/peer.json" --hf_budget_s "$HF_BUDGET" 2>&1 |
  tee "$LOG_DIR/peer.log" &&
  [ -s "$LOG_DIR/peer.json" ]; then
  PEER_ARGS=("--peer=$LOG_DIR/peer.json")
fi

phase "rami-bench decode"
# The engine rows (whole decode steps through CudaModel) get what is left of a 4.5-minute mark
# after ~25 s of kernel rows, at least 30 s; rows past it are skipped, saying so.
ENGINE_BUDGET=$((245 - (SECONDS - START)))
if [ "$ENGINE_BUDGET" -lt 30 ]; then ENGINE_BUDGET=30; fi
"$BUILD_DIR/tools/rami-bench" decode "${PEER_ARGS[@]}" --engine=on \
  --engine_budget_s="$ENGINE_BUDGET" 2>&1 | tee "$LOG_DIR/bench.log" || BENCH_OK=0

phase "summary"
grep -E "tests passed|tests failed" "$LOG_DIR/ctest.log" || echo "ctest: no summary line"
echo "benchmark: $([ "$BENCH_OK" = 1 ] && echo ran || echo FAILED) (log: $LOG_DIR/bench.log)"
echo "total: $((SECONDS - START)) s"
[ "$TESTS_OK" = 1 ] && [ "$BENCH_OK" = 1 ]
