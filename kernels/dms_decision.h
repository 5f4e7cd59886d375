// DMS eviction decisions (docs/dms.md "Where the decision comes from").
//
// Borrowed neuron: for KV head h the decision reads query head h·G, channel D−1, after the
// q-norm and before RoPE: α = (q·alpha_scale − alpha_offset > 0); that channel is then zeroed
// (before RoPE here, and again after RoPE with DmsZeroDecisionChannelCpu, because rotate-half
// RoPE would leak channel D/2−1 into it).
// Adapter: α = (logit·alpha_scale − alpha_offset > 0) for logits of a separate projection
// (dms_proj_alpha over RMSNorm_alpha of the layer input).
// Per-layer decisions (dms_alpha_per: layer): KV head 0 of rank 0 decides for every head of
// every rank: its α as a float (the other ranks contribute 0), shared over the ranks (a sum or
// a broadcast from rank 0), then spread to every head.
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

// The adapter: logits = x · wᵀ (+ bias) (LinearCpu, the bias added after the products), then
// DmsLogitDecisionCpu. DmsAdapterDecisionCuda (kernels/cuda/dms_decision.h) is its twin.
struct DmsAdapterParams {
  const float* x = nullptr;     // [num_tokens, hidden]: RMSNorm_alpha(layer input)
  const float* w = nullptr;     // [num_kv_heads, hidden]: dms_proj_alpha
  const float* bias = nullptr;  // [num_kv_heads] or null
  float* logits = nullptr;      // [num_tokens, num_kv_heads] out
  uint8_t* alpha = nullptr;     // [num_tokens, num_kv_heads] out, 1 = evict
  int num_tokens = 0;
  int num_kv_heads = 0;
  int hidden = 0;
  float alpha_scale = 100.0f;
  float alpha_offset = 5.0f;
};

struct DmsHeadZeroParams {
  uint8_t* alpha = nullptr;  // [num_tokens, num_kv_heads]
  float* shared = nullptr;   // [num_tokens]
  int num_tokens = 0;
  int num_kv_heads = 0;
  bool contribute = true;  // this rank holds KV head 0 (rank 0)
};

// Reads the decisions of the borrowed neurons and zeroes them.
void DmsQueryDecisionCpu(const DmsQueryDecisionParams& p);
// Zeroes the borrowed channels again (after RoPE); alpha is not touched.
void DmsZeroDecisionChannelCpu(const DmsQueryDecisionParams& p);
void DmsLogitDecisionCpu(const DmsLogitDecisionParams& p);
void DmsAdapterDecisionCpu(const DmsAdapterParams& p);
// shared[t] = contribute ? α[t, 0] : 0
void DmsHeadZeroToFloatCpu(const DmsHeadZeroParams& p);
// α[t, h] = shared[t] > 0.5 for every head h
void DmsSpreadHeadZeroCpu(const DmsHeadZeroParams& p);

}  // namespace rami::kernels
