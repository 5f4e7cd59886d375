// Random bf16 fill for rami-bench: a counter-based hash (splitmix64) per element, so the values
// need no RNG state and do not depend on the launch geometry.
#include <cuda_runtime.h>

#include "tools/bench_fill.h"

namespace rami::bench {
namespace {

__global__ void FillRandomBf16Kernel(uint16_t* data, size_t count, uint64_t seed, float scale) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    // Top 24 bits → [0, 1) → [-scale, scale); bf16 by truncation (the bench needs no rounding).
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
    const float value = (2.0f * u - 1.0f) * scale;
    data[i] = static_cast<uint16_t>(__float_as_uint(value) >> 16);
  }
}

}  // namespace

cudaError_t FillRandomBf16(uint16_t* data, size_t count, uint64_t seed, float scale,
                           cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  // Enough blocks to fill the GPU; the grid-stride loop covers the rest.
  const size_t blocks = (count + kThreads - 1) / kThreads;
  FillRandomBf16Kernel<<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), kThreads, 0,
                         stream>>>(data, count, seed, scale);
  return cudaGetLastError();
}

}  // namespace rami::bench
