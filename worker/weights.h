// ModelWeights: one tensor-parallel rank's shard of a Llama-family checkpoint in float32,
// sliced at load time. Column-parallel: q/k/v and the DMS adapter (by head) and gate/up (by
// row); row-parallel:
// o and down (by column; rank 0 alone holds o's bias); vocab-parallel: embedding and LM head.
// DeepSeek layers add MLA and MoE weights (worker/deepseek_weights.h); fp8 weights are
// dequantized at load (worker/shard_reader.h).
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/checkpoint.h"
#include "worker/deepseek_weights.h"
#include "worker/model_config.h"
#include "worker/shard_reader.h"

namespace rami {

struct ShardSpec {
  int rank = 0;
  int world_size = 1;
};

// Per-rank sizes derived from the config and the shard; Make() checks divisibility.
// MLA: kv_heads is 1 on every rank (the latent cache is replicated, dms.md §6).
struct ShardDims {
  int q_heads = 0;              // local query heads
  int kv_heads = 0;             // local KV heads
  int intermediate = 0;         // local MLP width
  int moe_intermediate = 0;     // local width of each routed expert (MoE)
  int shared_intermediate = 0;  // local width of the fused shared experts (MoE)
  int vocab = 0;                // local vocabulary rows
  int vocab_start = 0;          // first vocabulary row of this rank
  static absl::StatusOr<ShardDims> Make(const ModelConfig& config, const ShardSpec& shard);
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

// DeepSeek-V2/V3 layer `layer` (deepseek_weights.cc): MLA, dense MLP or MoE, DMS adapter.
absl::StatusOr<LayerWeights> LoadDeepseekLayer(ShardReader& reader, const ModelConfig& config,
                                               const ShardDims& dims, const ShardSpec& shard,
                                               int layer);

// Validates the checkpoint's tensor names (none missing, none unexpected) and shapes, then
// reads and slices this rank's shard.
absl::StatusOr<ModelWeights> LoadWeights(const Checkpoint& checkpoint, const ModelConfig& config,
                                         const ShardSpec& shard);

}  // namespace rami
