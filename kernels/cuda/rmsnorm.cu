// RMSNorm (+ residual add) on the GPU: one block per row, a block-wide sum of squares in fp32.
// The fp32 entry (RmsNormCuda, kernels/rmsnorm.h params) and the typed one share the kernel.
// Rows of x and out may be wider than `cols` (row strides): the norm then covers a row's first
// cols elements in place, e.g. MLA's compressed latent ahead of its rope part.
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/dispatch.cuh"

namespace rami::kernels {
namespace {

using cuda_detail::BlockSum;
using cuda_detail::FromFloat;
using cuda_detail::ToFloat;

constexpr int kThreads = 256;

// `x_stride` and `out_stride` are the resolved row strides (never 0).
template <typename T>
__global__ void RmsNormKernel(RmsNormCudaParams p, int x_stride, int out_stride) {
  const int64_t row = blockIdx.x;
  const T* x = static_cast<const T*>(p.x) + row * x_stride;
  T* res = p.residual != nullptr ? static_cast<T*>(p.residual) + row * p.cols : nullptr;
  const T* weight = static_cast<const T*>(p.weight);
  T* out = static_cast<T*>(p.out) + row * out_stride;
  float sum_sq = 0.0f;
  for (int c = threadIdx.x; c < p.cols; c += blockDim.x) {
    float y = ToFloat(x[c]);
    if (res != nullptr) {
      const T stored = FromFloat<T>(y + ToFloat(res[c]));
      res[c] = stored;      // only this thread reads res[c] again below
      y = ToFloat(stored);  // normalise what the residual stream holds
    }
    sum_sq += y * y;
  }
  __shared__ float scratch[32];
  const float inv_rms = rsqrtf(BlockSum(sum_sq, scratch) / p.cols + p.eps);
  for (int c = threadIdx.x; c < p.cols; c += blockDim.x) {
    const float y = ToFloat(res != nullptr ? res[c] : x[c]);
    out[c] = FromFloat<T>(ToFloat(weight[c]) * (y * inv_rms));
  }
}

}  // namespace

cudaError_t RmsNormTypedCuda(const RmsNormCudaParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  const int x_stride = p.x_stride == 0 ? p.cols : p.x_stride;
  const int out_stride = p.out_stride == 0 ? p.cols : p.out_stride;
  if (x_stride < p.cols || out_stride < p.cols) return cudaErrorInvalidValue;
  // The residual stream is dense: strided rows only for the plain norm.
  if (p.residual != nullptr && (x_stride != p.cols || out_stride != p.cols)) {
    return cudaErrorInvalidValue;
  }
  return RAMI_DISPATCH_DTYPE(p.dtype, T, [&] {
    RmsNormKernel<T><<<p.rows, kThreads, 0, stream>>>(p, x_stride, out_stride);
    return cudaGetLastError();
  });
}

cudaError_t RmsNormCuda(const RmsNormParams& p, cudaStream_t stream) {
  return RmsNormTypedCuda({.x = p.x,
                           .residual = p.residual,
                           .weight = p.weight,
                           .out = p.out,
                           .rows = p.rows,
                           .cols = p.cols,
                           .eps = p.eps,
                           .dtype = DeviceDType::kF32},
                          stream);
}

}  // namespace rami::kernels
