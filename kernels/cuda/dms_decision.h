// The DMS decisions of the CUDA forward pass besides the borrowed-neuron read (fused into
// QkvPrepCuda), twins of kernels/dms_decision.h:
//  * DmsLogitDecisionCuda: decisions from fp32 adapter logits (the CPU twin's params);
//  * DmsAdapterDecisionCuda: the adapter (dms_separate_alpha) over x = RMSNorm_alpha(layer
//    input) in the compute dtype, one warp per (token, head) dot product accumulated in fp32
//    (the projection has only kv_heads outputs: too narrow for a GEMM);
//  * the per-layer share (dms_alpha_per: layer): DmsHeadZeroToFloatCuda, a float all-reduce over
//    the ranks, then DmsSpreadHeadZeroCuda, on the CPU twins' params with device pointers.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_dtype.h"
#include "kernels/dms_decision.h"

namespace rami::kernels {

struct DmsAdapterCudaParams {
  const void* x = nullptr;     // [num_tokens, hidden] dtype: RMSNorm_alpha(layer input)
  const void* w = nullptr;     // [num_kv_heads, hidden] dtype: dms_proj_alpha
  const void* bias = nullptr;  // [num_kv_heads] dtype or null
  uint8_t* alpha = nullptr;    // [num_tokens, num_kv_heads] 1 = evict
  int num_tokens = 0;
  int num_kv_heads = 0;
  int hidden = 0;
  float alpha_scale = 100.0f;
  float alpha_offset = 5.0f;
  DeviceDType dtype = DeviceDType::kBF16;
};

cudaError_t DmsLogitDecisionCuda(const DmsLogitDecisionParams& p, cudaStream_t stream);
cudaError_t DmsAdapterDecisionCuda(const DmsAdapterCudaParams& p, cudaStream_t stream);
cudaError_t DmsHeadZeroToFloatCuda(const DmsHeadZeroParams& p, cudaStream_t stream);
cudaError_t DmsSpreadHeadZeroCuda(const DmsHeadZeroParams& p, cudaStream_t stream);

}  // namespace rami::kernels
