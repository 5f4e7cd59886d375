// Fused QKV preparation on the GPU: one warp per (token, head of the fused projection). Lane l
// holds channels l + 32·j (j < D/32), so both halves of every rotate-half pair (i, i + D/2)
// sit in the same lane and RoPE needs no shuffle; the q/k norm is one warp reduction. The
// decision channel D−1 is lane 31's last element.
#include <cuda_runtime.h>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/qkv_prep.h"

namespace rami::kernels {
namespace {

using cuda_detail::FromFloat;
using cuda_detail::ToFloat;
using cuda_detail::WarpSum;

constexpr int kWarps = 4;

template <typename T, int D>
__global__ void QkvPrepKernel(QkvPrepCudaParams p) {
  constexpr int kPer = D / 32;  // channels per lane
  const int heads = p.num_q_heads + 2 * p.num_kv_heads;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (item >= static_cast<int64_t>(p.num_tokens) * heads) return;  // whole warp leaves
  const int lane = threadIdx.x % 32;
  const int t = static_cast<int>(item / heads), head = static_cast<int>(item % heads);
  const T* src = static_cast<const T*>(p.qkv) + item * D;
  float x[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) x[j] = ToFloat(src[lane + 32 * j]);

  const bool is_q = head < p.num_q_heads;
  const bool is_k = !is_q && head < p.num_q_heads + p.num_kv_heads;
  if (!is_q && !is_k) {  // a value head: copied as is
    T* dst =
        static_cast<T*>(p.v) +
        (static_cast<int64_t>(t) * p.num_kv_heads + (head - p.num_q_heads - p.num_kv_heads)) * D;
#pragma unroll
    for (int j = 0; j < kPer; ++j) dst[lane + 32 * j] = FromFloat<T>(x[j]);
    return;
  }

  // Qwen3 per-head RMSNorm; the result is rounded to T as the model's own q/k norm output is.
  const T* norm = static_cast<const T*>(is_q ? p.q_norm : p.k_norm);
  if (norm != nullptr) {
    float sum_sq = 0.0f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) sum_sq += x[j] * x[j];
    const float inv_rms = rsqrtf(WarpSum(sum_sq) / D + p.eps);
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      x[j] = ToFloat(FromFloat<T>(ToFloat(norm[lane + 32 * j]) * (x[j] * inv_rms)));
    }
  }

  // DMS borrowed neuron: the first query head of each group, channel D−1, before RoPE.
  const int group = p.num_q_heads / p.num_kv_heads;
  const bool decides = is_q && p.alpha != nullptr && head % group == 0;
  if (decides && lane == 31) {
    // Multiply, round, subtract, as the CPU twin: a contracted fma would decide values at the
    // threshold differently (fp32 mode must reproduce the CPU's decisions exactly).
    p.alpha[static_cast<int64_t>(t) * p.num_kv_heads + head / group] =
        __fsub_rn(__fmul_rn(x[kPer - 1], p.alpha_scale), p.alpha_offset) > 0.0f ? 1 : 0;
    x[kPer - 1] = 0.0f;
  }

  // Rotate-half RoPE; the angle is float(position) · inv_freq in fp32, as the CPU twin forms
  // it, with precise sincosf (long positions give large angles: no fast-math intrinsics).
  const float pos = static_cast<float>(p.positions[t]);
#pragma unroll
  for (int j = 0; j < kPer / 2; ++j) {
    const int i = lane + 32 * j;
    float s, c;
    sincosf(pos * p.inv_freq[i], &s, &c);
    c *= p.attention_scale;
    s *= p.attention_scale;
    const float x1 = x[j], x2 = x[j + kPer / 2];
    x[j] = x1 * c - x2 * s;
    x[j + kPer / 2] = x2 * c + x1 * s;
  }
  if (decides && lane == 31) x[kPer - 1] = 0.0f;  // RoPE mixed channel D/2−1 back in

  T* dst = is_q ? static_cast<T*>(p.q) + (static_cast<int64_t>(t) * p.num_q_heads + head) * D
                : static_cast<T*>(p.k) +
                      (static_cast<int64_t>(t) * p.num_kv_heads + head - p.num_q_heads) * D;
#pragma unroll
  for (int j = 0; j < kPer; ++j) dst[lane + 32 * j] = FromFloat<T>(x[j]);
}

}  // namespace

cudaError_t QkvPrepCuda(const QkvPrepCudaParams& p, cudaStream_t stream) {
  const int64_t items = static_cast<int64_t>(p.num_tokens) * (p.num_q_heads + 2 * p.num_kv_heads);
  if (items == 0) return cudaSuccess;
  if (p.num_kv_heads <= 0 || p.num_q_heads % p.num_kv_heads != 0) return cudaErrorInvalidValue;
  const int blocks = static_cast<int>((items + kWarps - 1) / kWarps);
  return RAMI_DISPATCH_DTYPE(p.dtype, T, [&] {
    return RAMI_DISPATCH_HEAD_DIM(p.head_dim, D, [&] {
      QkvPrepKernel<T, D><<<blocks, kWarps * 32, 0, stream>>>(p);
      return cudaGetLastError();
    });
  });
}

}  // namespace rami::kernels
