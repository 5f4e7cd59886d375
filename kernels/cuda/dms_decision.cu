// DMS adapter decisions on the GPU (dms_separate_alpha: true): α = (logit·scale − offset > 0)
// for the fp32 logits of the dms_proj_alpha GEMM, elementwise in fp32 as the CPU twin
// (kernels/dms_decision.h DmsLogitDecisionCpu). The borrowed-neuron decision is fused into
// QkvPrepCuda instead.
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_kernels.h"

namespace rami::kernels {
namespace {

__global__ void DmsLogitDecisionKernel(DmsLogitDecisionParams p) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < p.count; i += gridDim.x * blockDim.x) {
    // Explicit roundings: a contracted fma would decide logits at the threshold differently
    // from the CPU's multiply-then-subtract (0.05f · 100 − 5 is 0 there, 7e-8 as an fma).
    p.alpha[i] = __fsub_rn(__fmul_rn(p.logits[i], p.alpha_scale), p.alpha_offset) > 0.0f ? 1 : 0;
  }
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

}  // namespace rami::kernels
