// Log-softmax + top-n on the GPU: one block per row. Max and Σ exp (per-thread double
// accumulation) by block reductions, then n rounds of a block arg-best, each over the tokens
// after the previous pick in canonical order — n ≤ 20 passes over a row that stays in L2.
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/canonical_order.cuh"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/dispatch.cuh"

namespace rami::kernels {
namespace {

using cuda_detail::BlockMax;
using cuda_detail::BlockSum;

constexpr int kThreads = 1024;

__global__ void __launch_bounds__(kThreads) LogSoftmaxTopNKernel(LogSoftmaxTopNParams p) {
  __shared__ float xs[32];
  __shared__ int ids[32];
  __shared__ double dscratch[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * p.cols;
  const float* x = p.logits + base;
  float max = -INFINITY;
  for (int c = threadIdx.x; c < p.cols; c += kThreads) max = fmaxf(max, x[c]);
  max = BlockMax(max, xs);
  double sum = 0.0;
  for (int c = threadIdx.x; c < p.cols; c += kThreads) sum += exp(static_cast<double>(x[c]) - max);
  sum = BlockSum(sum, dscratch);
  const float log_z = max + static_cast<float>(log(sum));
  if (p.out != nullptr) {
    for (int c = threadIdx.x; c < p.cols; c += kThreads) p.out[base + c] = x[c] - log_z;
  }
  if (p.targets != nullptr && threadIdx.x == 0) {
    p.target_logprobs[blockIdx.x] = x[p.targets[blockIdx.x]] - log_z;
  }
  if (p.top_n > 0) {
    cuda_detail::BlockTopN(x, p.cols, p.top_n, log_z, p.top_ids + blockIdx.x * int64_t{p.top_n},
                           p.top_logprobs + blockIdx.x * int64_t{p.top_n}, xs, ids);
  }
}

}  // namespace

cudaError_t LogSoftmaxTopNCuda(const LogSoftmaxTopNParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  LogSoftmaxTopNKernel<<<p.rows, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace rami::kernels
