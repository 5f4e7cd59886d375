// DMS eviction decisions (shared/docs/dms.md §2).
//
// Borrowed neuron: for KV head h the decision reads query head h·G, channel D−1, after the
// q-norm and before RoPE: α = (q·alpha_scale − alpha_offset > 0); that channel is then zeroed
// (before RoPE here, and again after RoPE with DmsZeroDecisionChannelCpu, because rotate-half
// RoPE would leak channel D/2−1 into it).
// Adapter: α = (logit·alpha_scale − alpha_offset > 0) for logits of a separate projection.
// Arithmetic in float32, as the reference computes it.
#pragma once

#include <cstdint>

namespace rami::kernels {

struct DmsQueryDecisionParams {
  float* q = nullptr;        // [num_tokens, num_q_heads, head_dim]; channel D−1 of h·G zeroed
  uint8_t* alpha = nullptr;  // [num_tokens, num_kv_heads] 1 = evict
  int num_tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float alpha_scale = 100.0f;
  float alpha_offset = 5.0f;
};

struct DmsLogitDecisionParams {
  const float* logits = nullptr;  // [num_tokens, num_kv_heads]
  uint8_t* alpha = nullptr;       // [num_tokens, num_kv_heads]
  int count = 0;                  // num_tokens · num_kv_heads
  float alpha_scale = 100.0f;
  float alpha_offset = 5.0f;
};

// Reads the decisions of the borrowed neurons and zeroes them.
void DmsQueryDecisionCpu(const DmsQueryDecisionParams& p);
// Zeroes the borrowed channels again (after RoPE); alpha is not touched.
void DmsZeroDecisionChannelCpu(const DmsQueryDecisionParams& p);
void DmsLogitDecisionCpu(const DmsLogitDecisionParams& p);

}  // namespace rami::kernels
