// SwiGLU on the GPU: out = silu(gate) · up, elementwise in fp32, grid-stride over rows × cols.
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/elementwise.h"

namespace rami::kernels {
namespace {

using cuda_detail::FromFloat;
using cuda_detail::ToFloat;

template <typename T>
__global__ void SwigluKernel(SwigluCudaParams p) {
  const int64_t total = static_cast<int64_t>(p.rows) * p.cols;
  const T* gate_up = static_cast<const T*>(p.gate_up);
  T* out = static_cast<T*>(p.out);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / p.cols, c = i % p.cols;
    const float g = ToFloat(gate_up[r * 2 * p.cols + c]);
    const float u = ToFloat(gate_up[r * 2 * p.cols + p.cols + c]);
    out[i] = FromFloat<T>(g / (1.0f + expf(-g)) * u);  // expf, not __expf: matches the CPU
  }
}

}  // namespace

cudaError_t SwigluCuda(const SwigluCudaParams& p, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(p.rows) * p.cols;
  if (total == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 8192));
  return RAMI_DISPATCH_DTYPE(p.dtype, T, [&] {
    SwigluKernel<T><<<blocks, kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  });
}

}  // namespace rami::kernels
