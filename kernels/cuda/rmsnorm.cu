// RMSNorm (+ residual add) on the GPU: one block per row, a block-wide sum of squares in fp32.
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_kernels.h"

namespace rami::kernels {
namespace {

constexpr int kThreads = 256;

__global__ void RmsNormKernel(RmsNormParams p) {
  const int64_t base = static_cast<int64_t>(blockIdx.x) * p.cols;
  const float* x = p.x + base;
  float* res = p.residual != nullptr ? p.residual + base : nullptr;
  float sum_sq = 0.0f;
  for (int c = threadIdx.x; c < p.cols; c += blockDim.x) {
    float y = x[c];
    if (res != nullptr) {
      y += res[c];
      res[c] = y;  // only this thread reads res[c] again below
    }
    sum_sq += y * y;
  }
  // Warp reduction, then one value per warp through shared memory.
  __shared__ float warp_sums[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2)
    sum_sq += __shfl_xor_sync(0xffffffff, sum_sq, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum_sq;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffff, v, offset);
    if (threadIdx.x == 0) warp_sums[0] = v;
  }
  __syncthreads();
  const float inv_rms = rsqrtf(warp_sums[0] / p.cols + p.eps);
  for (int c = threadIdx.x; c < p.cols; c += blockDim.x) {
    const float y = res != nullptr ? res[c] : x[c];
    p.out[base + c] = p.weight[c] * (y * inv_rms);
  }
}

}  // namespace

cudaError_t RmsNormCuda(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  RmsNormKernel<<<p.rows, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace rami::kernels
