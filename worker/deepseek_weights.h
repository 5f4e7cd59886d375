// The weights of a DeepSeek-V2/V3 layer that a Llama layer lacks — multi-head latent attention
// and the mixture of experts — in float32, one tensor-parallel rank's shard (query heads and
// expert intermediate rows split across ranks; the latent path and the router replicated).
// Loaded by LoadDeepseekLayer (worker/weights.h).
#pragma once

#include <vector>

namespace rami {

struct MlaWeights {
  // Query: q_lora_rank > 0: q_a → RMSNorm(q_a_norm) → q_b; else q_b holds q_proj.
  std::vector<float> q_a;       // [q_lora, hidden] or empty
  std::vector<float> q_a_bias;  // [q_lora] or empty (attention_bias)
  std::vector<float> q_a_norm;  // [q_lora] or empty
  std::vector<float> q_b;       // [local_heads · qk_head_dim, q_lora or hidden]
  // Latent: kv_a_proj_with_mqa → [latent | rope key], the latent RMSNorm'ed (kv_a_norm).
  std::vector<float> kv_a;       // [kv_lora + rope, hidden] (replicated)
  std::vector<float> kv_a_bias;  // [kv_lora + rope] or empty
  std::vector<float> kv_a_norm;  // [kv_lora]
  // kv_b_proj split per local head into its key and value parts, laid out for the absorbed
  // form: q_latent_h = W_uk_h^T q_nope_h and out_h = W_uv_h · (softmax-weighted latent).
  std::vector<float> w_uk_t;  // [local_heads, kv_lora, qk_nope] (W_uk_h transposed)
  std::vector<float> w_uv;    // [local_heads, v_head_dim, kv_lora]
};

// One SwiGLU expert (or the shared experts fused into one): this rank's intermediate rows.
struct ExpertWeights {
  std::vector<float> gate_up;  // [2 · local_intermediate, hidden]: gate rows, then up rows
  std::vector<float> down;     // [hidden, local_intermediate]
};

struct MoeWeights {
  std::vector<float> router;           // [num_experts, hidden] (mlp.gate.weight, replicated)
  std::vector<float> correction_bias;  // [num_experts] (V3 e_score_correction_bias) or empty
  std::vector<ExpertWeights> experts;  // [num_experts]
  ExpertWeights shared;                // empty when n_shared_experts is 0
};

}  // namespace rami
