// The row permutation kernels of GPU MoE (semantics in moe.h): gather tokens' rows into expert
// order before the experts' GEMMs, and combine the expert outputs per token after them. Both
// are grid-stride loops over elements; the combine sums a token's top_k slots in a fixed
// order, so results never depend on scheduling.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/moe.h"

namespace rami::kernels {
namespace {

using cuda_detail::FromFloat;
using cuda_detail::ToFloat;

constexpr int kThreads = 256;

int Blocks(int64_t total) {
  return static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 8192));
}

template <typename T>
__global__ void MoeGatherKernel(MoeGatherCudaParams p) {
  const int64_t total = static_cast<int64_t>(p.num_rows) * p.cols;
  const T* src = static_cast<const T*>(p.src);
  T* dst = static_cast<T*>(p.dst);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / p.cols, c = i % p.cols;
    dst[i] = src[static_cast<int64_t>(p.src_row[r]) * p.cols + c];
  }
}

template <typename T>
__global__ void MoeCombineKernel(MoeCombineCudaParams p) {
  const int64_t total = static_cast<int64_t>(p.num_tokens) * p.cols;
  const T* expert_out = static_cast<const T*>(p.expert_out);
  T* out = static_cast<T*>(p.out);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / p.cols, c = i % p.cols;
    float acc = 0.0f;
    for (int j = 0; j < p.top_k; ++j) {
      const int64_t slot = t * p.top_k + j;
      acc += p.weights[slot] *
             ToFloat(expert_out[static_cast<int64_t>(p.slot_row[slot]) * p.cols + c]);
    }
    out[i] = FromFloat<T>(acc);
  }
}

}  // namespace

cudaError_t MoeGatherCuda(const MoeGatherCudaParams& p, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(p.num_rows) * p.cols;
  if (total == 0) return cudaSuccess;
  return RAMI_DISPATCH_DTYPE(p.dtype, T, [&] {
    MoeGatherKernel<T><<<Blocks(total), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  });
}

cudaError_t MoeCombineCuda(const MoeCombineCudaParams& p, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(p.num_tokens) * p.cols;
  if (total == 0) return cudaSuccess;
  return RAMI_DISPATCH_DTYPE(p.dtype, T, [&] {
    MoeCombineKernel<T><<<Blocks(total), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  });
}

}  // namespace rami::kernels
