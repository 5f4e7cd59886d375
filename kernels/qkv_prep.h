// The attention block's per-head preparation of the fused QKV projection, as one op:
// split [T, Hq + 2·Hkv, D] into q, k, v; Qwen3's per-head RMSNorm of q and k; the DMS
// borrowed-neuron decision read and channel zeroing (dms.md §2); rotate-half RoPE of q and k;
// the decision channel zeroed again after RoPE. The CPU twin composes the existing CPU kernels
// in exactly the order worker/cpu/decoder_layer.cc calls them; the CUDA kernel
// (kernels/cuda/qkv_prep.h) fuses them into one pass per head.
#pragma once

#include <cstdint>

namespace rami::kernels {

struct QkvPrepParams {
  const float* qkv = nullptr;          // [num_tokens, num_q_heads + 2·num_kv_heads, head_dim]
  float* q = nullptr;                  // [num_tokens, num_q_heads, head_dim]
  float* k = nullptr;                  // [num_tokens, num_kv_heads, head_dim]
  float* v = nullptr;                  // [num_tokens, num_kv_heads, head_dim]
  const float* q_norm = nullptr;       // [head_dim] or null (no q/k norm: not Qwen3)
  const float* k_norm = nullptr;       // [head_dim] or null
  const int32_t* positions = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;  // [head_dim / 2] (worker/engine/rope_table.h: llama3, yarn …)
  uint8_t* alpha = nullptr;         // [num_tokens, num_kv_heads] borrowed-neuron decisions, or null
  int num_tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float eps = 1e-6f;  // of the q/k norm
  float attention_scale = 1.0f;
  float alpha_scale = 100.0f;
  float alpha_offset = 5.0f;
};

void QkvPrepCpu(const QkvPrepParams& p);

}  // namespace rami::kernels
