// ModelConfig: the hyper-parameters of a decoder — Llama family, or DeepSeek-V2/V3 (MLA, MoE,
// block-scaled fp8). ParseModelConfig (config_parser.h) fills it from a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rami::checkpoint {

enum class Architecture { kLlama, kQwen2, kQwen3, kDeepseekV2, kDeepseekV3 };

enum class RopeType { kDefault, kLinear, kLlama3, kYarn };

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;  // linear, llama3, yarn
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 and yarn: the context length the base model was trained for.
  int64_t original_max_position_embeddings = 0;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double attention_factor = 0.0;  // 0 = derived from factor (and mscale)
  double mscale = 0.0;
  double mscale_all_dim = 0.0;
  bool truncate = true;
};

// DMS keys of the checkpoint (docs/dms.md §1); present only for DMS checkpoints.
struct DmsConfig {
  bool enabled = false;
  int window_size = 512;
  double alpha_scale = 100.0;
  double initial_alpha_offset = 5.0;
  bool separate_alpha = false;
  bool adapter_bias = false;     // dms_proj_alpha has a bias (attention_bias)
  bool alpha_per_layer = false;  // dms_alpha_per == "layer"
  bool disable_eviction = false;
  double target_cr = 8.0;
};

// Multi-head latent attention (DeepSeek-V2/V3). Present when `enabled`; then head_dim,
// num_kv_heads and the Llama attention flags are unused.
struct MlaConfig {
  bool enabled = false;
  int q_lora_rank = 0;  // 0: q_proj (config null); else q_a_proj → q_a_layernorm → q_b_proj
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
  bool rope_interleave = true;  // RoPE rotates pairs (2i, 2i+1); false: rotate-half (V3 only)
  bool attention_bias = false;  // q_a_proj, kv_a_proj_with_mqa and o_proj carry biases
  float softmax_scale = 0;      // qk_head_dim^-0.5 · mscale(factor, mscale_all_dim)^2

  int qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int latent_row() const { return kv_lora_rank + qk_rope_head_dim; }  // cached values per token
};

enum class MoeScoring { kSoftmax, kSigmoid };
enum class MoeTopk { kGreedy, kGroupLimitedGreedy, kNoauxTc };

// DeepSeek mixture of experts. Layers >= first_k_dense_replace use it (moe_layer_freq 1).
struct MoeConfig {
  bool enabled = false;
  int num_experts = 0;        // n_routed_experts
  int experts_per_token = 0;  // num_experts_per_tok
  int num_shared_experts = 0;
  int intermediate_size = 0;  // moe_intermediate_size (per expert)
  int first_k_dense_replace = 0;
  MoeScoring scoring = MoeScoring::kSoftmax;
  MoeTopk topk = MoeTopk::kGreedy;
  int num_groups = 1;   // n_group
  int topk_groups = 1;  // topk_group
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
  bool correction_bias = false;  // gate.e_score_correction_bias (V3)

  bool IsMoeLayer(int layer) const { return enabled && layer >= first_k_dense_replace; }
};

// FP8 block-scaled weights (config quantization_config, DeepSeek-V3): weight [R, C] in
// e4m3 with weight_scale_inv [ceil(R/br), ceil(C/bc)]; value = fp8 · scale_inv.
struct Fp8Config {
  bool enabled = false;
  int block_rows = 128;
  int block_cols = 128;
};

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  std::string architecture_name;  // as written in config.json
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2 always; Llama with attention_bias
  bool o_bias = false;    // Llama with attention_bias
  bool qk_norm = false;   // Qwen3
  RopeConfig rope;
  DmsConfig dms;
  MlaConfig mla;
  MoeConfig moe;
  Fp8Config fp8;
  // DeepSeek-V3's multi-token-prediction layers: stored as model.layers.{L, ...}; rami does
  // not run them (no speculative decoding) and ignores their tensors.
  int num_nextn_predict_layers = 0;
  std::vector<int> eos_token_ids;
  int bos_token_id = -1;

  int group_size() const { return num_q_heads / num_kv_heads; }
};

std::string ArchitectureName(Architecture arch);

}  // namespace rami::checkpoint
