// Random device tensors made on the device: a counter-based hash per element, so a tensor of any
// size needs no host buffer, no RNG state and no download, and its values are a pure function of
// (seed, index) whatever the launch geometry — every run benchmarks the same numbers. Used by
// rami-bench's random weights (bench_weights.h) and its GEMM and attention rows.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::bench {

// data[i] = center + half_width · u, u uniform in [-1, 1) from the top 24 bits of splitmix64 of
// (seed, i); stored in `dtype` (bf16: round to nearest even). data: [count] elements of `dtype`
// in device memory. Enqueued on `stream`; returns the launch's error.
cudaError_t FillUniformCuda(void* data, kernels::DeviceDType dtype, size_t count, uint64_t seed,
                            float center, float half_width, cudaStream_t stream);

// A well-mixed seed for the `index`-th tensor of a family seeded by `seed` (splitmix64 of both),
// so that neighbouring tensors do not get shifted copies of one sequence.
uint64_t TensorSeed(uint64_t seed, uint64_t index);

}  // namespace rami::bench
