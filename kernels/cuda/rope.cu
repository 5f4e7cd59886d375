// Strided RoPE on the GPU: one thread per (token, head, rotated pair), in place. The pair is
// (i, i + dim/2) in rotate-half form or (2i, 2i+1) interleaved; both elements belong to the
// thread, so threads never share data. The arithmetic is RopeCpu's (kernels/cpu/rope.cc)
// operation for operation, so fp32 results match it up to sincosf's last bit.
#include <cuda_runtime.h>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/rope.h"

namespace rami::kernels {
namespace {

using cuda_detail::FromFloat;
using cuda_detail::ToFloat;

constexpr int kThreads = 256;

template <typename T>
__global__ void RopeKernel(RopeCudaParams p) {
  const int half = p.dim / 2;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= static_cast<int64_t>(p.num_tokens) * p.heads * half) return;
  const int i = static_cast<int>(item % half);
  const int64_t token_head = item / half;
  const int h = static_cast<int>(token_head % p.heads);
  const int t = static_cast<int>(token_head / p.heads);
  T* x = static_cast<T*>(p.x) + t * p.token_stride + h * p.head_stride + p.offset;

  // The angle is float(position) · inv_freq in fp32 as RopeCpu forms it, with precise sincosf
  // (positions in the tens of thousands give large angles: no fast-math intrinsics), and cos
  // and sin scaled before use, as RopeCpu does.
  const float pos = static_cast<float>(p.positions[t]);
  float s, c;
  sincosf(__fmul_rn(pos, p.inv_freq[i]), &s, &c);
  c = __fmul_rn(c, p.attention_scale);
  s = __fmul_rn(s, p.attention_scale);

  const int i1 = p.interleaved ? 2 * i : i;
  const int i2 = p.interleaved ? 2 * i + 1 : i + half;
  const float x1 = ToFloat(x[i1]), x2 = ToFloat(x[i2]);
  // Products rounded before the add, as the CPU twin (no fma contraction): fp32 mode then
  // differs from RopeCpu only where sincosf does.
  x[i1] = FromFloat<T>(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)));
  x[i2] = FromFloat<T>(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
}

}  // namespace

cudaError_t RopeCuda(const RopeCudaParams& p, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.heads < 0 || p.dim <= 0 || p.dim % 2 != 0 || p.offset < 0 ||
      p.token_stride < 0 || p.head_stride < 0) {
    return cudaErrorInvalidValue;
  }
  const int64_t items = static_cast<int64_t>(p.num_tokens) * p.heads * (p.dim / 2);
  if (items == 0) return cudaSuccess;
  if (p.x == nullptr || p.positions == nullptr || p.inv_freq == nullptr) {
    return cudaErrorInvalidValue;
  }
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;  // beyond grid.x
  return RAMI_DISPATCH_DTYPE(p.dtype, T, [&] {
    RopeKernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  });
}

}  // namespace rami::kernels
