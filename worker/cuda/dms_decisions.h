// The DMS decisions of the CUDA forward pass besides the borrowed-neuron read (fused into
// kernels/cuda QkvPrepCuda), as the CPU backend makes them (worker/cpu/decoder_layer.cc):
//  * the adapter (dms_separate_alpha): α[t, h] = (logit·alpha_scale − alpha_offset > 0) with
//    logit = x[t] · w[h] + bias[h] accumulated in fp32, x = RMSNorm_alpha(layer input) (the CPU's
//    RmsNorm → Linear → DmsLogitDecisionCpu); one warp per (token, head): the projection has
//    only kv_heads outputs, too narrow for a GEMM;
//  * per-layer decisions (dms_alpha_per: layer): KV head 0 of rank 0 decides for every head of
//    every rank (the CPU's ShareHeadZero): HeadZeroToFloatCuda (rank 0 writes α[t, 0], the
//    others 0), a float all-reduce over the ranks, then SpreadHeadZeroCuda.
// Worker-side kernels like bias_add.cu; tested end to end against the CPU backend
// (tests/gpu/cuda_model_gpu_test.cc).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::cuda {

struct DmsAdapterParams {
  const void* x = nullptr;     // [num_tokens, hidden] dtype: RMSNorm_alpha(layer input)
  const void* w = nullptr;     // [num_kv_heads, hidden] dtype: dms_proj_alpha
  const void* bias = nullptr;  // [num_kv_heads] dtype or null
  uint8_t* alpha = nullptr;    // [num_tokens, num_kv_heads] 1 = evict
  int num_tokens = 0;
  int num_kv_heads = 0;
  int hidden = 0;
  float alpha_scale = 100.0f;
  float alpha_offset = 5.0f;
  kernels::DeviceDType dtype = kernels::DeviceDType::kBF16;
};
cudaError_t DmsAdapterDecisionCuda(const DmsAdapterParams& p, cudaStream_t stream);

struct HeadZeroParams {
  uint8_t* alpha = nullptr;  // [num_tokens, num_kv_heads]
  float* shared = nullptr;   // [num_tokens]
  int num_tokens = 0;
  int num_kv_heads = 0;
  bool contribute = true;  // HeadZeroToFloat: this rank holds KV head 0 (rank 0)
};
// shared[t] = contribute ? α[t, 0] : 0
cudaError_t HeadZeroToFloatCuda(const HeadZeroParams& p, cudaStream_t stream);
// α[t, h] = shared[t] > 0.5 for every head h
cudaError_t SpreadHeadZeroCuda(const HeadZeroParams& p, cudaStream_t stream);

}  // namespace rami::cuda
