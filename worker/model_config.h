// ModelConfig: the hyper-parameters of a Llama-family decoder, parsed and validated from a
// Hugging Face config.json. Every unsupported architecture or value is an error naming it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace rami {

enum class Architecture { kLlama, kQwen2, kQwen3 };

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

// DMS keys of the checkpoint (shared/docs/dms.md §1); present only for DMS checkpoints.
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
  std::vector<int> eos_token_ids;
  int bos_token_id = -1;

  int group_size() const { return num_q_heads / num_kv_heads; }

  // Parses and validates; `source` names the file in error messages.
  static absl::StatusOr<ModelConfig> FromJson(const nlohmann::json& json,
                                              const std::string& source);
};

std::string ArchitectureName(Architecture arch);

}  // namespace rami
