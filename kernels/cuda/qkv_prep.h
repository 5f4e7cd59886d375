// Device params of the fused QKV preparation (split, q/k RMSNorm, DMS decision read and
// channel zeroing, RoPE); semantics and CPU twin in kernels/qkv_prep.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::kernels {

struct QkvPrepCudaParams {
  const void* qkv = nullptr;           // [num_tokens, num_q_heads + 2·num_kv_heads, head_dim]
  void* q = nullptr;                   // [num_tokens, num_q_heads, head_dim]
  void* k = nullptr;                   // [num_tokens, num_kv_heads, head_dim]
  void* v = nullptr;                   // [num_tokens, num_kv_heads, head_dim]
  const void* q_norm = nullptr;        // [head_dim] dtype or null
  const void* k_norm = nullptr;        // [head_dim] dtype or null
  const int32_t* positions = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;     // [head_dim / 2] fp32
  uint8_t* alpha = nullptr;            // [num_tokens, num_kv_heads] or null (no borrowed neuron)
  int num_tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // 64 or 128
  float eps = 1e-6f;
  float attention_scale = 1.0f;
  float alpha_scale = 100.0f;
  float alpha_offset = 5.0f;
  DeviceDType dtype = DeviceDType::kBF16;
};

cudaError_t QkvPrepCuda(const QkvPrepCudaParams& p, cudaStream_t stream);

}  // namespace rami::kernels
