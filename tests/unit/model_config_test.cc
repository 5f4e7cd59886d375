// config.json parsing: supported architectures and RoPE variants, and clear errors that name
// the key and the value for everything rami does not support.
#include <cmath>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "worker/checkpoint/config_parser.h"
#include "worker/checkpoint/model_config.h"
#include "worker/checkpoint/weights.h"
#include "worker/engine/rope_table.h"

namespace rami {

using checkpoint::ParseModelConfig;

using checkpoint::Architecture;
using checkpoint::ModelConfig;
using checkpoint::RopeType;
using checkpoint::ShardDims;
using engine::MakeRopeTable;
using engine::RopeTable;

namespace {

nlohmann::json BaseConfig() {
  return nlohmann::json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 256, "hidden_size": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "eos_token_id": [1, 2]})");
}

absl::Status ParseError(const nlohmann::json& j) {
  return ParseModelConfig(j, "m/config.json").status();
}

void ExpectError(const nlohmann::json& j, const std::string& needle) {
  const absl::Status s = ParseError(j);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s;
  EXPECT_NE(s.message().find("m/config.json"), std::string::npos) << s;
}

TEST(ModelConfig, ParsesLlamaDefaults) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(BaseConfig(), "m/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, Architecture::kLlama);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->group_size(), 2);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int>{1, 2}));
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_FALSE(c->dms.enabled);
  EXPECT_EQ(c->rope.type, RopeType::kDefault);
}

TEST(ModelConfig, ArchitectureSpecificFlags) {
  nlohmann::json j = BaseConfig();
  j["architectures"] = {"Qwen2ForCausalLM"};
  absl::StatusOr<ModelConfig> qwen2 = ParseModelConfig(j, "m");
  ASSERT_TRUE(qwen2.ok());
  EXPECT_TRUE(qwen2->qkv_bias);
  EXPECT_FALSE(qwen2->o_bias);
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["head_dim"] = 32;
  absl::StatusOr<ModelConfig> qwen3 = ParseModelConfig(j, "m");
  ASSERT_TRUE(qwen3.ok());
  EXPECT_TRUE(qwen3->qk_norm);
  EXPECT_EQ(qwen3->head_dim, 32);
}

TEST(ModelConfig, ReadsDmsKeysWithReferenceDefaults) {
  nlohmann::json j = BaseConfig();
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["dms_window_size"] = 16;
  j["dms_alpha_per"] = "layer";
  absl::StatusOr<ModelConfig> c = ParseModelConfig(j, "m");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->dms.enabled);
  EXPECT_EQ(c->dms.window_size, 16);
  EXPECT_TRUE(c->dms.alpha_per_layer);
  EXPECT_EQ(c->dms.alpha_scale, 100.0);
  EXPECT_EQ(c->dms.initial_alpha_offset, 5.0);
  j["dms_alpha_per"] = "token";
  ExpectError(j, "dms_alpha_per");
}

TEST(ModelConfig, UnsupportedValuesAreNamed) {
  nlohmann::json j = BaseConfig();
  j["architectures"] = {"MistralForCausalLM"};
  ExpectError(j, "\"MistralForCausalLM\" is not supported (supported: LlamaForCausalLM");
  j = BaseConfig();
  j.erase("hidden_size");
  ExpectError(j, "hidden_size: missing");
  j = BaseConfig();
  j["num_key_value_heads"] = 3;
  ExpectError(j, "num_key_value_heads: 3 does not divide num_attention_heads 4");
  j = BaseConfig();
  j["hidden_act"] = "gelu";
  ExpectError(j, "hidden_act: \"gelu\" is not supported");
  j = BaseConfig();
  j["num_hidden_layers"] = "two";
  ExpectError(j, "num_hidden_layers: expected an integer, found \"two\"");
  j = BaseConfig();
  j["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 2.0}};
  ExpectError(j, "\"longrope\" is not supported");
  j = BaseConfig();
  j["mlp_bias"] = true;
  ExpectError(j, "mlp_bias");
  j = BaseConfig();
  j["eos_token_id"] = 999;
  ExpectError(j, "eos_token_id");
}

TEST(ModelConfig, RopeParametersOfTransformersFive) {
  nlohmann::json j = BaseConfig();
  j["rope_parameters"] = {{"rope_type", "yarn"},
                          {"rope_theta", 1e6},
                          {"factor", 4.0},
                          {"original_max_position_embeddings", 128}};
  absl::StatusOr<ModelConfig> c = ParseModelConfig(j, "m");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope.type, RopeType::kYarn);
  EXPECT_EQ(c->rope.theta, 1e6);
  const RopeTable table = MakeRopeTable(c->rope, c->head_dim);
  EXPECT_FLOAT_EQ(table.attention_scale, static_cast<float>(0.1 * std::log(4.0) + 1.0));
  ASSERT_EQ(table.inv_freq.size(), 8u);
  EXPECT_FLOAT_EQ(table.inv_freq[0], 1.0f);  // highest frequency: extrapolated (kept)
  // lowest frequency: interpolated (divided by the factor)
  EXPECT_FLOAT_EQ(table.inv_freq[7], static_cast<float>(1.0 / std::pow(1e6, 14.0 / 16) / 4.0));
}

TEST(ShardDims, RejectsIndivisibleSizes) {
  absl::StatusOr<ModelConfig> c = ParseModelConfig(BaseConfig(), "m");
  ASSERT_TRUE(c.ok());
  absl::StatusOr<ShardDims> d = ShardDims::Make(*c, {.rank = 0, .world_size = 4});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("num_key_value_heads (2) is not divisible by the "
                                      "tensor-parallel size 4"),
            std::string::npos)
      << d.status();
  EXPECT_FALSE(ShardDims::Make(*c, {.rank = 2, .world_size = 2}).ok());
  d = ShardDims::Make(*c, {.rank = 1, .world_size = 2});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->vocab_start, 128);
  EXPECT_EQ(d->kv_heads, 1);
}

// Every size is bounded before anything is allocated from it, and the error names the bound.
TEST(ModelConfig, HyperParametersAreBounded) {
  const struct {
    const char* key;
    int64_t value;
    const char* expected;
  } cases[] = {
      {"num_hidden_layers", 1000000000, "num_hidden_layers: expected a value in [1, 1024]"},
      {"hidden_size", 65537, "hidden_size: expected a value in [1, 65536]"},
      {"intermediate_size", 262145, "intermediate_size: expected a value in [1, 262144]"},
      {"num_attention_heads", 1025, "num_attention_heads: expected a value in [1, 1024]"},
      {"num_key_value_heads", 8, "num_key_value_heads: expected a value in [1, 4]"},
      {"vocab_size", 4194305, "vocab_size: expected a value in [1, 4194304]"},
  };
  for (const auto& c : cases) {
    nlohmann::json j = BaseConfig();
    j[c.key] = c.value;
    ExpectError(j, c.expected);
  }
  for (double theta : {0.0, -1.0}) {
    nlohmann::json j = BaseConfig();
    j["rope_theta"] = theta;
    ExpectError(j, "rope_theta: must be > 0");
    j.erase("rope_theta");
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", theta}};
    ExpectError(j, "rope_theta: must be > 0");
  }
}
}  // namespace
}  // namespace rami
