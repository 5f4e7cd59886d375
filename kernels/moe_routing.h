// DeepSeek mixture-of-experts routing: from router logits to each token's top-k experts and
// their weights, as transformers 4.57 computes them (fp32).
//   V2 (softmax): s = softmax(logits); greedy: top-k of s; group-limited: keep the topk_groups
//     groups with the largest max(s), other experts' s set to 0, then top-k;
//     weight = s · routed_scaling_factor.
//   V3 (sigmoid, noaux_tc): s = sigmoid(logits); choice = s + correction_bias; keep the
//     topk_groups groups with the largest sum of their top-2 choice values, other experts'
//     choice set to 0, top-k of choice; weight = s (uncorrected), divided by (Σ + 1e-20)
//     when norm_topk_prob, times routed_scaling_factor.
// Masked experts get 0, not −inf, exactly as transformers' masked_fill(…, 0.0) does.
#pragma once

#include <cstdint>

namespace rami::kernels {

enum class MoeRouting { kSoftmaxGreedy, kSoftmaxGroupLimited, kSigmoidNoauxTc };

struct MoeRoutingParams {
  const float* logits = nullptr;           // [num_tokens, num_experts]
  const float* correction_bias = nullptr;  // [num_experts] (sigmoid) or null
  int32_t* expert_ids = nullptr;           // [num_tokens, top_k]
  float* weights = nullptr;                // [num_tokens, top_k]
  int num_tokens = 0;
  int num_experts = 0;
  int top_k = 1;
  int num_groups = 1;
  int topk_groups = 1;
  MoeRouting routing = MoeRouting::kSoftmaxGreedy;
  bool norm_topk_prob = false;
  float routed_scaling_factor = 1.0f;
};

void MoeRoutingCpu(const MoeRoutingParams& p);

}  // namespace rami::kernels
