// The benchmarks' Qwen3 config; see bench_model_config.h.
#include "tools/bench_model_config.h"

#include <algorithm>

#include "nlohmann/json.hpp"
#include "worker/checkpoint/config_parser.h"

namespace rami::bench {

absl::StatusOr<checkpoint::ModelConfig> BenchModelConfig(const DecodeBenchOptions& o,
                                                         int longest_context, bool dms) {
  nlohmann::json j = {{"architectures", nlohmann::json::array({"Qwen3ForCausalLM"})},
                      {"vocab_size", o.vocab},
                      {"hidden_size", o.hidden},
                      {"intermediate_size", o.intermediate},
                      {"num_hidden_layers", o.num_layers},
                      {"num_attention_heads", o.num_q_heads},
                      {"num_key_value_heads", o.num_kv_heads},
                      {"head_dim", o.head_dim},
                      {"rms_norm_eps", 1e-6},
                      {"rope_theta", 1000000.0},
                      {"max_position_embeddings", std::max(40960, longest_context + 4096)},
                      {"tie_word_embeddings", false}};
  if (dms) {
    j["dms_window_size"] = o.dms_window;
    j["dms_alpha_scale"] = 100.0;
    j["dms_initial_alpha_offset"] = 5.0;
  }
  return checkpoint::ParseModelConfig(j, "rami-bench (Qwen3 shape)");
}

}  // namespace rami::bench
