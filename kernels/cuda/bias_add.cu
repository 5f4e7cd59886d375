// Bias add over rows (BiasAddCuda, kernels/cuda/elementwise.h; twin: kernels/bias_add.h): fp32
// arithmetic, one rounding back to the dtype.
#include <cuda_runtime.h>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/elementwise.h"

namespace rami::kernels {
namespace {

using cuda_detail::FromFloat;
using cuda_detail::ToFloat;

template <typename T>
__global__ void BiasAddKernel(T* y, const T* bias, int64_t total, int cols) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] = FromFloat<T>(ToFloat(y[i]) + ToFloat(bias[i % cols]));
  }
}

}  // namespace

cudaError_t BiasAddCuda(const BiasAddCudaParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.cols <= 0) return cudaSuccess;
  if (p.y == nullptr || p.bias == nullptr) return cudaErrorInvalidValue;
  const int64_t total = static_cast<int64_t>(p.rows) * p.cols;
  constexpr int kThreads = 256;
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return RAMI_DISPATCH_DTYPE(p.dtype, T, [&] {
    BiasAddKernel<T><<<static_cast<unsigned>(blocks < 4096 ? blocks : 4096), kThreads, 0, stream>>>(
        static_cast<T*>(p.y), static_cast<const T*>(p.bias), total, p.cols);
    return cudaGetLastError();
  });
}

}  // namespace rami::kernels
