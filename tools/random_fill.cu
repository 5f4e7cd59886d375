// Uniform random fills on the device; see random_fill.h. One thread per element in a
// grid-stride loop: the value depends on (seed, i) only.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "tools/random_fill.h"

#include "kernels/cuda/dispatch.cuh"

namespace rami::bench {
namespace {

using kernels::cuda_detail::FromFloat;

// splitmix64's finalizer of the i-th step of the stream that starts at `seed`.
__host__ __device__ inline uint64_t SplitMix64(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <typename T>
__global__ void FillUniformKernel(T* data, size_t count, uint64_t seed, float center,
                                  float half_width) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    // Top 24 bits → u in [0, 1) exactly representable in fp32 → [-1, 1).
    const float u = static_cast<float>(SplitMix64(seed, i) >> 40) * (1.0f / 16777216.0f);
    data[i] = FromFloat<T>(center + (2.0f * u - 1.0f) * half_width);
  }
}

template <typename T>
cudaError_t Launch(T* data, size_t count, uint64_t seed, float center, float half_width,
                   cudaStream_t stream) {
  constexpr int kThreads = 256;
  // Enough blocks to fill any GPU several times over; the grid-stride loop covers the rest.
  const size_t blocks = (count + kThreads - 1) / kThreads;
  FillUniformKernel<T>
      <<<static_cast<unsigned>(blocks < 8192 ? blocks : 8192), kThreads, 0, stream>>>(
          data, count, seed, center, half_width);
  return cudaGetLastError();
}

}  // namespace

cudaError_t FillUniformCuda(void* data, kernels::DeviceDType dtype, size_t count, uint64_t seed,
                            float center, float half_width, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (data == nullptr) return cudaErrorInvalidValue;
  switch (dtype) {
    case kernels::DeviceDType::kF32:
      return Launch(static_cast<float*>(data), count, seed, center, half_width, stream);
    case kernels::DeviceDType::kBF16:
      return Launch(static_cast<__nv_bfloat16*>(data), count, seed, center, half_width, stream);
  }
  return cudaErrorInvalidValue;
}

uint64_t TensorSeed(uint64_t seed, uint64_t index) {
  return SplitMix64(SplitMix64(seed, 0), index);
}

}  // namespace rami::bench
