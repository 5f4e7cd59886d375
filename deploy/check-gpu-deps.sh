#!/usr/bin/env bash
# Checks, on a Debian development machine, that the GPU build needs nothing but CUDA and
# third_party/gpu-deps: runs `tests/gpu/run.sh build` (configure with RAMI_REQUIRE_CUDA, build of
# every GPU target and rami-bench; no GPU needed) in a private mount namespace where the
# system's Abseil, GoogleTest, nlohmann_json, gRPC, protobuf, Gloo and BLAS — headers, CMake
# configs and libraries — are hidden, as on a GPU machine that lacks them.
#
#   deploy/check-gpu-deps.sh [build-dir] [mode]   # as root (unshare + mount); default
#                                                 # build-gpudeps, mode build (run.sh's modes;
#                                                 # `tests` here shows a GPU run with no GPU fail)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build-gpudeps}"
MODE="${2:-build}"
LIB=/usr/lib/x86_64-linux-gnu

HIDE_DIRS=(/usr/include/absl /usr/include/gtest /usr/include/gmock /usr/include/nlohmann
  /usr/include/grpc /usr/include/grpcpp /usr/include/google/protobuf /usr/include/gloo
  /usr/src/googletest /usr/share/cmake/nlohmann_json "$LIB/cmake/absl" "$LIB/cmake/GTest"
  "$LIB/cmake/grpc" "$LIB/cmake/protobuf" "$LIB/cmake/Gloo"
  /usr/include/x86_64-linux-gnu/openblas-pthread "$LIB/openblas-pthread")
HIDE_FILES=("$LIB"/libabsl_* "$LIB"/libgtest* "$LIB"/libgmock* "$LIB"/libgrpc* "$LIB"/libprotobuf*
  "$LIB"/libgloo* "$LIB"/libopenblas* "$LIB"/libblas* "$LIB"/liblapack* /usr/include/cblas.h
  /usr/include/x86_64-linux-gnu/cblas.h)

# The inner script receives the paths as arguments: "dirs…" -- "files…" (single quotes on
# purpose: it expands its own $1, $@).
# shellcheck disable=SC2016
unshare -m --propagation private bash -euo pipefail -c '
  while [ "$1" != -- ]; do
    if [ -d "$1" ]; then mount -t tmpfs none "$1"; fi
    shift
  done
  shift
  for f in "$@"; do
    if [ -e "$f" ]; then mount --bind /dev/null "$f"; fi
  done
  [ -z "$(ls /usr/include/absl)" ] || { echo "Abseil headers still visible"; exit 1; }
  # No deadline and a long build budget: 2 cores take 8-12 minutes from a fresh folder.
  RAMI_GPU_BUILD_DIR="'"$BUILD_DIR"'" RAMI_GPU_DEADLINE_S=0 RAMI_GPU_BUILD_S=3600 \
    bash tests/gpu/run.sh "'"$MODE"'"
' check "${HIDE_DIRS[@]}" -- "${HIDE_FILES[@]}"
