// Timing helpers shared by rami-bench's GPU benchmarks: CUDA events around enqueued work.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdio>

namespace rami::bench {

// Prints the failing CUDA call and returns 1 from the enclosing function (which returns int).
#define RAMI_BENCH_CUDA(call)                                                                 \
  do {                                                                                        \
    const cudaError_t rami_bench_e_ = (call);                                                 \
    if (rami_bench_e_ != cudaSuccess) {                                                       \
      std::fprintf(stderr, "rami-bench: %s: %s\n", #call, cudaGetErrorString(rami_bench_e_)); \
      return 1;                                                                               \
    }                                                                                         \
  } while (0)

// Device memory freed at scope exit.
struct DeviceBuffer {
  void* ptr = nullptr;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { Reset(); }
  void Reset() {
    cudaFree(ptr);
    ptr = nullptr;
  }
};

// Mean milliseconds of `fn()` (which enqueues work on `stream` and returns 0, or non-zero on
// failure) over `iters` calls, after 2 warm-up calls. Returns 0, or 1 on failure.
template <typename Fn>
int TimeMs(cudaStream_t stream, int iters, Fn fn, double* ms) {
  cudaEvent_t start = nullptr, stop = nullptr;
  RAMI_BENCH_CUDA(cudaEventCreate(&start));
  RAMI_BENCH_CUDA(cudaEventCreate(&stop));
  int failed = 0;
  for (int i = 0; i < 2 && failed == 0; ++i) failed = fn();
  cudaEventRecord(start, stream);
  for (int i = 0; i < iters && failed == 0; ++i) failed = fn();
  cudaEventRecord(stop, stream);
  const cudaError_t e = cudaEventSynchronize(stop);
  float total = 0;
  if (failed == 0 && e == cudaSuccess) cudaEventElapsedTime(&total, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (failed != 0) return 1;
  RAMI_BENCH_CUDA(e);
  *ms = total / iters;
  return 0;
}

}  // namespace rami::bench
