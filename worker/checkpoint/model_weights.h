// ModelWeights: one tensor-parallel rank's shard of a checkpoint in float32, as the loaders
// (weights.h, deepseek_weights.h) slice it. Column-parallel: q/k/v and the DMS adapter (by head)
// and gate/up (by row); row-parallel: o and down (by column; rank 0 alone holds o's bias);
// vocab-parallel: embedding and LM head. DeepSeek layers add MLA and MoE weights: query heads
// and expert intermediate rows split across ranks, the latent path and the router replicated.
#pragma once

#include <vector>

#include "worker/checkpoint/shard_dims.h"

namespace rami::checkpoint {

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

struct LayerWeights {
  std::vector<float> input_norm;  // [hidden]
  std::vector<float> qkv;         // [(q_heads + 2 kv_heads) · head_dim, hidden]
  std::vector<float> qkv_bias;    // [(q_heads + 2 kv_heads) · head_dim] or empty
  std::vector<float> q_norm;      // [head_dim] or empty (Qwen3)
  std::vector<float> k_norm;      // [head_dim] or empty (Qwen3)
  std::vector<float> o_proj;      // [hidden, q_heads · head_dim]
  std::vector<float> o_bias;      // [hidden] on rank 0 when the model has one, else empty
  std::vector<float> post_norm;   // [hidden]
  std::vector<float> gate_up;     // [2 · intermediate, hidden]: gate rows, then up rows
  std::vector<float> down;        // [hidden, intermediate]
  // DMS adapter mode (dms_separate_alpha): decision logits = dms_alpha · RMSNorm(x).
  std::vector<float> dms_alpha;       // [kv_heads, hidden] or empty
  std::vector<float> dms_alpha_bias;  // [kv_heads] or empty
  std::vector<float> dms_alpha_norm;  // [hidden] or empty
  // DeepSeek (config.mla.enabled): attention in `mla` (qkv, q/k norms unused); MoE layers use
  // `moe` instead of gate_up/down.
  MlaWeights mla;
  MoeWeights moe;
};

struct ModelWeights {
  ShardDims dims;
  std::vector<float> embed;       // [vocab, hidden] (local rows)
  std::vector<float> lm_head;     // [vocab, hidden] (local rows); empty when tied to embed
  std::vector<float> final_norm;  // [hidden]
  std::vector<LayerWeights> layers;

  const std::vector<float>& lm_head_or_embed() const { return lm_head.empty() ? embed : lm_head; }
};

}  // namespace rami::checkpoint
