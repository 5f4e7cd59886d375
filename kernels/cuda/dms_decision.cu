// The DMS decisions on the GPU (kernels/cuda/dms_decision.h), twins of kernels/dms_decision.h:
// the adapter's decisions from fp32 logits (DmsLogitDecisionCuda) or from the layer's normed
// input (DmsAdapterDecisionCuda: one warp per (token, head) dot product), and the per-layer
// share of head 0's decision. The borrowed-neuron decision is fused into QkvPrepCuda instead.
#include <cuda_runtime.h>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/dms_decision.h"

namespace rami::kernels {
namespace {

using cuda_detail::ToFloat;

__global__ void DmsLogitDecisionKernel(DmsLogitDecisionParams p) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < p.count; i += gridDim.x * blockDim.x) {
    // Explicit roundings: a contracted fma would decide logits at the threshold differently
    // from the CPU's multiply-then-subtract (0.05f · 100 − 5 is 0 there, 7e-8 as an fma).
    p.alpha[i] = __fsub_rn(__fmul_rn(p.logits[i], p.alpha_scale), p.alpha_offset) > 0.0f ? 1 : 0;
  }
}

// One warp per (token, head): the dot product over hidden, reduced in the warp.
template <typename T>
__global__ void AdapterKernel(DmsAdapterCudaParams p) {
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= static_cast<int64_t>(p.num_tokens) * p.num_kv_heads) return;
  const int64_t t = warp / p.num_kv_heads;
  const int h = static_cast<int>(warp % p.num_kv_heads);
  const T* x = static_cast<const T*>(p.x) + t * p.hidden;
  const T* w = static_cast<const T*>(p.w) + static_cast<int64_t>(h) * p.hidden;
  float sum = 0.0f;
  for (int i = lane; i < p.hidden; i += 32) sum += ToFloat(x[i]) * ToFloat(w[i]);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_down_sync(0xffffffffu, sum, offset);
  if (lane == 0) {
    const float logit = p.bias != nullptr ? sum + ToFloat(static_cast<const T*>(p.bias)[h]) : sum;
    // Explicit roundings, as DmsLogitDecisionCuda: multiply, then subtract.
    p.alpha[warp] = __fsub_rn(__fmul_rn(logit, p.alpha_scale), p.alpha_offset) > 0.0f ? 1 : 0;
  }
}

__global__ void HeadZeroToFloatKernel(DmsHeadZeroParams p) {
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < p.num_tokens;
       t += gridDim.x * blockDim.x) {
    p.shared[t] =
        p.contribute ? static_cast<float>(p.alpha[static_cast<int64_t>(t) * p.num_kv_heads]) : 0.0f;
  }
}

__global__ void SpreadHeadZeroKernel(DmsHeadZeroParams p) {
  const int64_t total = static_cast<int64_t>(p.num_tokens) * p.num_kv_heads;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    p.alpha[i] = p.shared[i / p.num_kv_heads] > 0.5f ? 1 : 0;
  }
}

unsigned Blocks(int64_t threads, int per_block) {
  const int64_t blocks = (threads + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < 4096 ? blocks : 4096);
}

}  // namespace

cudaError_t DmsLogitDecisionCuda(const DmsLogitDecisionParams& p, cudaStream_t stream) {
  if (p.count == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int blocks =
      (p.count + kThreads - 1) / kThreads < 1024 ? (p.count + kThreads - 1) / kThreads : 1024;
  DmsLogitDecisionKernel<<<blocks, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t DmsAdapterDecisionCuda(const DmsAdapterCudaParams& p, cudaStream_t stream) {
  if (p.num_tokens <= 0 || p.num_kv_heads <= 0) return cudaSuccess;
  if (p.x == nullptr || p.w == nullptr || p.alpha == nullptr || p.hidden <= 0) {
    return cudaErrorInvalidValue;
  }
  constexpr int kThreads = 256;  // 8 warps
  const int64_t warps = static_cast<int64_t>(p.num_tokens) * p.num_kv_heads;
  const unsigned blocks = static_cast<unsigned>((warps * 32 + kThreads - 1) / kThreads);
  return RAMI_DISPATCH_DTYPE(p.dtype, T, [&] {
    AdapterKernel<T><<<blocks, kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  });
}

cudaError_t DmsHeadZeroToFloatCuda(const DmsHeadZeroParams& p, cudaStream_t stream) {
  if (p.num_tokens <= 0) return cudaSuccess;
  if (p.alpha == nullptr || p.shared == nullptr || p.num_kv_heads <= 0) {
    return cudaErrorInvalidValue;
  }
  HeadZeroToFloatKernel<<<Blocks(p.num_tokens, 256), 256, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t DmsSpreadHeadZeroCuda(const DmsHeadZeroParams& p, cudaStream_t stream) {
  if (p.num_tokens <= 0) return cudaSuccess;
  if (p.alpha == nullptr || p.shared == nullptr || p.num_kv_heads <= 0) {
    return cudaErrorInvalidValue;
  }
  SpreadHeadZeroKernel<<<Blocks(static_cast<int64_t>(p.num_tokens) * p.num_kv_heads, 256), 256, 0,
                         stream>>>(p);
  return cudaGetLastError();
}

}  // namespace rami::kernels
