// Parsing and validation of config.json into ModelConfig. Reads both the transformers 4.x
// form (rope_theta + rope_scaling) and the 5.x form (rope_parameters).
#include "worker/checkpoint/config_parser.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/checkpoint/architectures/architecture.h"
#include "worker/checkpoint/config_reader.h"

namespace rami::checkpoint {
namespace {

// Upper bounds of the common hyper-parameters, checked before anything is sized from them, so
// a hostile config.json (num_hidden_layers 1e9) is refused by name instead of allocating until
// bad_alloc. The largest open models sit well inside, with 4-16x headroom: DeepSeek-V3 has 61
// layers, hidden 7168, 128 heads, vocab 129280 and 256 experts; Llama-3.1-405B 126 layers,
// hidden 16384, intermediate 53248, 128 heads; Gemma 3 a vocab of 262144.
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHiddenSize = 65536;
constexpr int64_t kMaxIntermediateSize = int64_t{1} << 18;  // 262144
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxVocabSize = int64_t{1} << 22;  // 4194304

absl::StatusOr<RopeConfig> ReadRope(const ConfigReader& top, int64_t max_positions) {
  RopeConfig rope;
  // transformers 5 keeps everything in rope_parameters; 4.x splits theta and rope_scaling.
  const bool v5 = top.Has("rope_parameters");
  const std::string key = v5 ? "rope_parameters" : "rope_scaling";
  RAMI_ASSIGN_OR_RETURN(rope.theta, top.Double("rope_theta", 10000.0));
  // theta 0 makes every inverse frequency inf (NaN activations); negative is meaningless.
  if (rope.theta <= 0) return top.Error("rope_theta", "must be > 0");
  if (!top.Has(key)) return rope;
  const nlohmann::json& params = top.json().at(key);
  if (!params.is_object()) return top.Error(key, "expected an object");
  const ConfigReader reader(params, absl::StrCat(top.source(), ": ", key));
  if (v5) {
    RAMI_ASSIGN_OR_RETURN(rope.theta, reader.Double("rope_theta", rope.theta));
    if (rope.theta <= 0) return reader.Error("rope_theta", "must be > 0");
  }
  std::string type = "default";
  if (reader.Has("rope_type")) {
    RAMI_ASSIGN_OR_RETURN(type, reader.String("rope_type", std::nullopt));
  } else if (reader.Has("type")) {
    RAMI_ASSIGN_OR_RETURN(type, reader.String("type", std::nullopt));
  }
  RAMI_ASSIGN_OR_RETURN(double partial, reader.Double("partial_rotary_factor", 1.0));
  if (partial != 1.0) return reader.Error("partial_rotary_factor", "only 1.0 is supported");
  if (type == "default") return rope;
  RAMI_ASSIGN_OR_RETURN(rope.factor, reader.Double("factor", std::nullopt));
  if (rope.factor < 1.0) return reader.Error("factor", "must be >= 1");
  if (type == "linear") {
    rope.type = RopeType::kLinear;
  } else if (type == "llama3") {
    rope.type = RopeType::kLlama3;
    RAMI_ASSIGN_OR_RETURN(rope.low_freq_factor, reader.Double("low_freq_factor", std::nullopt));
    RAMI_ASSIGN_OR_RETURN(rope.high_freq_factor, reader.Double("high_freq_factor", std::nullopt));
    RAMI_ASSIGN_OR_RETURN(rope.original_max_position_embeddings,
                          reader.Int("original_max_position_embeddings", std::nullopt, 1));
    if (rope.high_freq_factor <= rope.low_freq_factor) {
      return reader.Error("high_freq_factor", "must be greater than low_freq_factor");
    }
  } else if (type == "yarn") {
    rope.type = RopeType::kYarn;
    RAMI_ASSIGN_OR_RETURN(rope.original_max_position_embeddings,
                          reader.Int("original_max_position_embeddings", max_positions, 1));
    RAMI_ASSIGN_OR_RETURN(rope.beta_fast, reader.Double("beta_fast", 32.0));
    RAMI_ASSIGN_OR_RETURN(rope.beta_slow, reader.Double("beta_slow", 1.0));
    RAMI_ASSIGN_OR_RETURN(rope.attention_factor, reader.Double("attention_factor", 0.0));
    RAMI_ASSIGN_OR_RETURN(rope.mscale, reader.Double("mscale", 0.0));
    RAMI_ASSIGN_OR_RETURN(rope.mscale_all_dim, reader.Double("mscale_all_dim", 0.0));
    RAMI_ASSIGN_OR_RETURN(rope.truncate, reader.Bool("truncate", true));
  } else {
    return reader.Error("rope_type", absl::StrCat("\"", type,
                                                  "\" is not supported (supported: default, "
                                                  "linear, llama3, yarn)"));
  }
  return rope;
}

// eos_token_id may be an integer or a list of integers.
absl::Status ReadEos(const ConfigReader& reader, ModelConfig* config) {
  if (!reader.Has("eos_token_id")) return absl::OkStatus();
  const nlohmann::json& v = reader.json().at("eos_token_id");
  auto add = [&](const nlohmann::json& id) -> absl::Status {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= config->vocab_size) {
      return reader.Error("eos_token_id", absl::StrCat("expected token ids in [0, ",
                                                       config->vocab_size, "), found ", v.dump()));
    }
    config->eos_token_ids.push_back(id.get<int>());
    return absl::OkStatus();
  };
  if (v.is_array()) {
    for (const nlohmann::json& id : v) RAMI_RETURN_IF_ERROR(add(id));
    return absl::OkStatus();
  }
  return add(v);
}

// quantization_config: only DeepSeek-V3's block-scaled fp8 (dequantized at load).
absl::Status ReadQuantization(const ConfigReader& top, Fp8Config* fp8) {
  if (!top.Has("quantization_config")) return absl::OkStatus();
  const nlohmann::json& q = top.json().at("quantization_config");
  if (!q.is_object()) return top.Error("quantization_config", "expected an object");
  const ConfigReader reader(q, absl::StrCat(top.source(), ": quantization_config"));
  RAMI_ASSIGN_OR_RETURN(std::string method, reader.String("quant_method", std::nullopt));
  if (method != "fp8") {
    return reader.Error("quant_method",
                        absl::StrCat("\"", method, "\" is not supported (only \"fp8\")"));
  }
  RAMI_ASSIGN_OR_RETURN(std::string fmt, reader.String("fmt", "e4m3"));
  if (fmt != "e4m3") {
    return reader.Error("fmt", absl::StrCat("\"", fmt, "\" is not supported (only \"e4m3\")"));
  }
  if (!reader.Has("weight_block_size")) {
    return reader.Error("weight_block_size", "missing (only block-scaled fp8 is supported)");
  }
  const nlohmann::json& block = q.at("weight_block_size");
  if (!block.is_array() || block.size() != 2 || !block[0].is_number_integer() ||
      !block[1].is_number_integer() || block[0].get<int64_t>() < 1 || block[1].get<int64_t>() < 1 ||
      block[0].get<int64_t>() > 1 << 16 || block[1].get<int64_t>() > 1 << 16) {
    return reader.Error(
        "weight_block_size",
        absl::StrCat("expected [rows, cols] of positive integers, found ", block.dump()));
  }
  fp8->enabled = true;
  fp8->block_rows = block[0].get<int>();
  fp8->block_cols = block[1].get<int>();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseModelConfig(const nlohmann::json& json,
                                             const std::string& source) {
  if (!json.is_object()) return absl::InvalidArgumentError(source + ": expected a JSON object");
  const ConfigReader reader(json, source);
  ModelConfig c;
  if (!reader.Has("architectures") || !json.at("architectures").is_array() ||
      json.at("architectures").size() != 1 || !json.at("architectures")[0].is_string()) {
    return reader.Error("architectures", "expected a list with one architecture name");
  }
  c.architecture_name = json.at("architectures")[0].get<std::string>();
  const ArchitectureSpec* spec = FindArchitecture(c.architecture_name);
  if (spec == nullptr) {
    return reader.Error("architectures",
                        absl::StrCat("\"", c.architecture_name, "\" is not supported (supported: ",
                                     SupportedArchitectures(), ")"));
  }
  c.architecture = spec->architecture;

  RAMI_ASSIGN_OR_RETURN(int64_t vocab, reader.Int("vocab_size", std::nullopt, 1, kMaxVocabSize));
  RAMI_ASSIGN_OR_RETURN(int64_t hidden, reader.Int("hidden_size", std::nullopt, 1, kMaxHiddenSize));
  RAMI_ASSIGN_OR_RETURN(int64_t inter,
                        reader.Int("intermediate_size", std::nullopt, 1, kMaxIntermediateSize));
  RAMI_ASSIGN_OR_RETURN(int64_t layers,
                        reader.Int("num_hidden_layers", std::nullopt, 1, kMaxLayers));
  RAMI_ASSIGN_OR_RETURN(int64_t heads,
                        reader.Int("num_attention_heads", std::nullopt, 1, kMaxHeads));
  RAMI_ASSIGN_OR_RETURN(int64_t kv_heads, reader.Int("num_key_value_heads", heads, 1, heads));
  c.vocab_size = static_cast<int>(vocab);
  c.hidden_size = static_cast<int>(hidden);
  c.intermediate_size = static_cast<int>(inter);
  c.num_layers = static_cast<int>(layers);
  c.num_q_heads = static_cast<int>(heads);
  c.num_kv_heads = static_cast<int>(kv_heads);
  if (c.num_q_heads % c.num_kv_heads != 0) {
    return reader.Error("num_key_value_heads",
                        absl::StrCat(kv_heads, " does not divide num_attention_heads ", heads));
  }
  if (!reader.Has("head_dim") && hidden % heads != 0) {
    return reader.Error("head_dim",
                        absl::StrCat("missing, and hidden_size ", hidden,
                                     " is not divisible by num_attention_heads ", heads));
  }
  RAMI_ASSIGN_OR_RETURN(int64_t head_dim, reader.Int("head_dim", hidden / heads, 2, 1024));
  if (head_dim % 2 != 0) return reader.Error("head_dim", "must be even (RoPE rotates halves)");
  c.head_dim = static_cast<int>(head_dim);
  RAMI_ASSIGN_OR_RETURN(c.rms_norm_eps, reader.Double("rms_norm_eps", 1e-6));
  if (c.rms_norm_eps <= 0) return reader.Error("rms_norm_eps", "must be > 0");
  RAMI_ASSIGN_OR_RETURN(c.max_position_embeddings,
                        reader.Int("max_position_embeddings", 4096, 1, int64_t{1} << 40));
  RAMI_ASSIGN_OR_RETURN(c.tie_word_embeddings, reader.Bool("tie_word_embeddings", false));
  RAMI_ASSIGN_OR_RETURN(std::string act, reader.String("hidden_act", "silu"));
  if (act != "silu") {
    return reader.Error("hidden_act", absl::StrCat("\"", act, "\" is not supported (only silu)"));
  }
  RAMI_ASSIGN_OR_RETURN(c.rope, ReadRope(reader, c.max_position_embeddings));
  RAMI_ASSIGN_OR_RETURN(int64_t bos, reader.Int("bos_token_id", -1, -1, vocab - 1));
  c.bos_token_id = static_cast<int>(bos);
  RAMI_RETURN_IF_ERROR(ReadEos(reader, &c));
  RAMI_RETURN_IF_ERROR(ReadQuantization(reader, &c.fp8));
  RAMI_RETURN_IF_ERROR(spec->configure(reader, &c));
  return c;
}

}  // namespace rami::checkpoint
