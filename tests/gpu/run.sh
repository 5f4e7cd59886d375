#!/usr/bin/env bash
# Builds rami with CUDA and runs every GPU test (label `gpu`) and GPU benchmark, in one call,
# on a machine with an NVIDIA GPU. Needs only CUDA, CMake and a C++ compiler plus Abseil,
# nlohmann_json and GoogleTest (no gRPC: RAMI_WITH_GRPC=OFF).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/cuda/bin:$PATH"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
BUILD_DIR="${RAMI_GPU_BUILD_DIR:-build-gpu}"
GEN=$(command -v ninja >/dev/null && echo "-G Ninja" || echo "")
cmake -S . -B "$BUILD_DIR" $GEN -DCMAKE_BUILD_TYPE=Release -DRAMI_WITH_GRPC=OFF >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target rami_gpu_test
ctest --test-dir "$BUILD_DIR" -L gpu --output-on-failure
