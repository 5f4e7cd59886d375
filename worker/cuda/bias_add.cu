// Bias add over rows (bias_add.h): fp32 arithmetic, one rounding back to the dtype.
#include <cuda_bf16.h>

#include "worker/cuda/bias_add.h"

namespace rami::cuda {
namespace {

template <typename T>
__device__ float Load(const T* p, int64_t i);
template <>
__device__ float Load<float>(const float* p, int64_t i) {
  return p[i];
}
template <>
__device__ float Load<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ void Store(float* p, int64_t i, float v) { p[i] = v; }
__device__ void Store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

template <typename T>
__global__ void BiasAddKernel(T* y, const T* bias, int64_t total, int cols) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    Store(y, i, Load(y, i) + Load(bias, i % cols));
  }
}

template <typename T>
cudaError_t Launch(const BiasAddParams& p, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(p.rows) * p.cols;
  constexpr int kThreads = 256;
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  BiasAddKernel<T><<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), kThreads, 0, stream>>>(
      static_cast<T*>(p.y), static_cast<const T*>(p.bias), total, p.cols);
  return cudaGetLastError();
}

}  // namespace

cudaError_t BiasAddCuda(const BiasAddParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.cols <= 0) return cudaSuccess;
  if (p.y == nullptr || p.bias == nullptr) return cudaErrorInvalidValue;
  switch (p.dtype) {
    case kernels::DeviceDType::kF32:
      return Launch<float>(p, stream);
    case kernels::DeviceDType::kBF16:
      return Launch<__nv_bfloat16>(p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace rami::cuda
