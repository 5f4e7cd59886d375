// DeepSeek-V2/V3 support outside the forward pass: config.json parsing (MLA, MoE, YaRN softmax
// scale, quantization_config) with errors naming the field; the exact e4m3 decode; loading of
// block-scaled fp8 weights (dequantized at load, TP slices included) and its errors.
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/golden/golden_files.h"
#include "tests/testing/safetensors_writer.h"
#include "worker/checkpoint/checkpoint.h"
#include "worker/checkpoint/config_parser.h"
#include "worker/checkpoint/dtype.h"
#include "worker/checkpoint/model_config.h"
#include "worker/checkpoint/shard_reader.h"
#include "worker/cpu/model.h"

namespace rami {

using checkpoint::ParseModelConfig;

using checkpoint::Architecture;
using checkpoint::Checkpoint;
using checkpoint::ConvertToF32;
using checkpoint::DType;
using checkpoint::F16ToF32;
using checkpoint::F8E4M3ToF32;
using checkpoint::F8E5M2ToF32;
using checkpoint::Fp8Config;
using checkpoint::ModelConfig;
using checkpoint::MoeScoring;
using checkpoint::MoeTopk;
using checkpoint::RopeType;
using checkpoint::ShardReader;
using checkpoint::TensorInfo;
using cpu::Model;

namespace {

nlohmann::json GoldenConfig(const std::string& name) {
  std::ifstream in(testing::GoldenModelDir(name) + "/config.json");
  return nlohmann::json::parse(in);
}

void ExpectError(const nlohmann::json& j, const std::string& needle) {
  const absl::Status s = ParseModelConfig(j, "m/config.json").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s;
}

TEST(DeepseekConfig, ParsesV2AndV3) {
  absl::StatusOr<ModelConfig> v2 = ParseModelConfig(GoldenConfig("deepseek_v2"), "m");
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->architecture, Architecture::kDeepseekV2);
  EXPECT_TRUE(v2->mla.enabled);
  EXPECT_EQ(v2->mla.q_lora_rank, 0);  // null in config.json: q_proj
  EXPECT_EQ(v2->mla.latent_row(), 32 + 8);
  EXPECT_EQ(v2->num_kv_heads, 1);  // one latent stream per layer
  EXPECT_EQ(v2->head_dim, 8);      // RoPE covers the rope dims only
  EXPECT_EQ(v2->moe.topk, MoeTopk::kGroupLimitedGreedy);
  EXPECT_EQ(v2->moe.scoring, MoeScoring::kSoftmax);
  EXPECT_FALSE(v2->moe.correction_bias);
  EXPECT_FLOAT_EQ(v2->mla.softmax_scale, 1.0f / std::sqrt(24.0f));

  absl::StatusOr<ModelConfig> v3 = ParseModelConfig(GoldenConfig("deepseek_v3"), "m");
  ASSERT_TRUE(v3.ok()) << v3.status();
  EXPECT_EQ(v3->mla.q_lora_rank, 24);
  EXPECT_TRUE(v3->mla.rope_interleave);
  EXPECT_EQ(v3->moe.topk, MoeTopk::kNoauxTc);
  EXPECT_TRUE(v3->moe.norm_topk_prob);
  EXPECT_TRUE(v3->moe.correction_bias);
  EXPECT_EQ(v3->moe.first_k_dense_replace, 1);
  EXPECT_FALSE(v3->moe.IsMoeLayer(0));
  EXPECT_TRUE(v3->moe.IsMoeLayer(2));
  const double mscale = 0.1 * 0.8 * std::log(4.0) + 1.0;  // yarn factor 4, mscale_all_dim 0.8
  EXPECT_FLOAT_EQ(v3->mla.softmax_scale, static_cast<float>(mscale * mscale / std::sqrt(24.0)));
  EXPECT_FALSE(v3->fp8.enabled);

  absl::StatusOr<ModelConfig> fp8 = ParseModelConfig(GoldenConfig("deepseek_v3_fp8"), "m");
  ASSERT_TRUE(fp8.ok()) << fp8.status();
  EXPECT_TRUE(fp8->fp8.enabled);
  EXPECT_EQ(fp8->fp8.block_rows, 32);
  EXPECT_EQ(fp8->fp8.block_cols, 16);
}

// The released DeepSeek-V3 config.json (its keys and values as published).
TEST(DeepseekConfig, ParsesTheReleasedV3Config) {
  const nlohmann::json j = nlohmann::json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "attention_bias": false,
    "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekV3Config",
                 "AutoModel": "modeling_deepseek.DeepseekV3Model",
                 "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM"},
    "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1, "first_k_dense_replace": 3,
    "hidden_act": "silu", "hidden_size": 7168, "intermediate_size": 18432,
    "kv_lora_rank": 512, "max_position_embeddings": 163840, "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8, "n_routed_experts": 256,
    "n_shared_experts": 1, "norm_topk_prob": true, "num_attention_heads": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1, "q_lora_rank": 1536, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                            "quant_method": "fp8", "weight_block_size": [128, 128]},
    "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                     "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                     "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
    "tie_word_embeddings": false, "topk_group": 4, "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16", "transformers_version": "4.46.3", "use_cache": true,
    "v_head_dim": 128, "vocab_size": 129280})");
  absl::StatusOr<ModelConfig> c = ParseModelConfig(j, "m");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->dms.enabled);
  EXPECT_EQ(c->mla.latent_row(), 576);
  EXPECT_EQ(c->num_nextn_predict_layers, 1);
  EXPECT_EQ(c->fp8.block_rows, 128);
  EXPECT_EQ(c->moe.num_experts, 256);
  EXPECT_EQ(c->moe.num_groups, 8);
  EXPECT_EQ(c->rope.type, RopeType::kYarn);
  const double mscale = 0.1 * std::log(40.0) + 1.0;
  EXPECT_FLOAT_EQ(c->mla.softmax_scale, static_cast<float>(mscale * mscale / std::sqrt(192.0)));
}

TEST(DeepseekConfig, ErrorsNameTheField) {
  const nlohmann::json v2 = GoldenConfig("deepseek_v2"), v3 = GoldenConfig("deepseek_v3");
  nlohmann::json j = v3;
  j.erase("kv_lora_rank");
  ExpectError(j, "kv_lora_rank: missing");
  j = v3;
  j["moe_layer_freq"] = 2;
  ExpectError(j, "moe_layer_freq: only 1 is supported");
  j = v3;
  j["topk_method"] = "greedy";
  ExpectError(j, "topk_method: \"greedy\" is not supported for DeepseekV3ForCausalLM");
  j = v3;
  j["scoring_func"] = "softmax";
  ExpectError(j, "scoring_func: \"softmax\" is not supported");
  j = v3;
  j["n_group"] = 3;
  ExpectError(j, "n_group: 3 does not divide n_routed_experts 8");
  j = v3;
  j["num_key_value_heads"] = 2;
  ExpectError(j, "num_key_value_heads: must equal num_attention_heads");
  j = v3;
  j["qk_rope_head_dim"] = 7;
  ExpectError(j, "qk_rope_head_dim: must be even");
  j = v2;
  j["topk_method"] = "noaux_tc";
  ExpectError(j, "topk_method: \"noaux_tc\" is not supported for DeepseekV2ForCausalLM");
  j = v2;
  j["norm_topk_prob"] = true;
  ExpectError(j, "norm_topk_prob: true is not supported for DeepseekV2ForCausalLM");
  j = v3;
  j["dms_window_size"] = 8;  // DMS without the adapter: no borrowed neuron for a latent
  ExpectError(j, "dms_separate_alpha: MLA models need true");
  j = v3;
  j["quantization_config"] = {{"quant_method", "awq"}};
  ExpectError(j, "quantization_config: quant_method: \"awq\" is not supported");
  j = v3;
  j["quantization_config"] = {{"quant_method", "fp8"}, {"weight_block_size", {128}}};
  ExpectError(j, "weight_block_size: expected [rows, cols]");
}

TEST(Fp8, E4m3DecodesEveryCodeExactly) {
  // Independent formula: (-1)^s · 2^(e-7) · (1 + m/8), subnormals 2^-6 · m/8, S.1111.111 NaN.
  for (int code = 0; code < 256; ++code) {
    const int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
    const float got = F8E4M3ToF32(static_cast<uint8_t>(code));
    if (e == 15 && m == 7) {
      EXPECT_TRUE(std::isnan(got)) << code;
      continue;
    }
    const double magnitude = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
    EXPECT_EQ(got, static_cast<float>(s ? -magnitude : magnitude)) << "code " << code;
    EXPECT_EQ(std::signbit(got), s == 1) << code;
  }
  EXPECT_EQ(F8E4M3ToF32(0x7e), 448.0f);  // the largest finite value
  EXPECT_EQ(F8E4M3ToF32(0x38), 1.0f);
  EXPECT_EQ(F8E4M3ToF32(0x01), 0x1p-9f);  // the smallest subnormal
  EXPECT_EQ(F8E4M3ToF32(0xc0), -2.0f);
  for (int code = 0; code < 256; ++code) {
    const float got = F8E5M2ToF32(static_cast<uint8_t>(code));
    const float want = F16ToF32(static_cast<uint16_t>(code << 8));
    EXPECT_TRUE(std::isnan(want) ? std::isnan(got) : got == want) << code;
  }
  const uint8_t bytes[3] = {0x38, 0xc0, 0x7e};
  float out[3];
  ASSERT_TRUE(ConvertToF32(DType::kF8E4M3, bytes, 3, out).ok());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 448.0f);
}

// Block-scaled reads against a plain dequantization of the raw fp8 values, for the whole
// tensor and for row and column slices that start inside a block.
TEST(Fp8, BlockScaledReadsDequantizeTheSlice) {
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt =
      Checkpoint::Open(testing::GoldenModelDir("deepseek_v3_fp8"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  absl::StatusOr<ModelConfig> config = ParseModelConfig((*ckpt)->config(), "m");
  ASSERT_TRUE(config.ok());
  const std::string name = "model.layers.1.self_attn.kv_a_proj_with_mqa.weight";  // [40, 64]
  ASSERT_EQ((*ckpt)->Info(name)->dtype, DType::kF8E4M3);
  const std::vector<int64_t> shape = {40, 64};
  absl::StatusOr<std::vector<float>> raw = (*ckpt)->ReadF32(name, shape, {}, /*allow_fp8=*/true);
  absl::StatusOr<std::vector<float>> scale = (*ckpt)->ReadF32(name + "_scale_inv", {2, 4});
  ASSERT_TRUE(raw.ok() && scale.ok());
  std::vector<float> full(raw->size());
  for (int r = 0; r < 40; ++r) {
    for (int c = 0; c < 64; ++c)
      full[r * 64 + c] = (*raw)[r * 64 + c] * (*scale)[(r / 32) * 4 + c / 16];
  }
  ShardReader reader(**ckpt, config->fp8);
  absl::StatusOr<std::vector<float>> all = reader.Read(name, shape);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, full);
  absl::StatusOr<std::vector<float>> rows = reader.Read(name, shape, {0, 20, 20});
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(*rows, std::vector<float>(full.begin() + 20 * 64, full.end()));
  absl::StatusOr<std::vector<float>> cols = reader.Read(name, shape, {1, 24, 24});
  ASSERT_TRUE(cols.ok());
  for (int r = 0; r < 40; ++r) {
    for (int c = 0; c < 24; ++c) ASSERT_EQ((*cols)[r * 24 + c], full[r * 64 + 24 + c]);
  }
  // Without quantization_config an fp8 tensor is an error, not raw values.
  ShardReader plain(**ckpt, Fp8Config{});
  EXPECT_NE(plain.Read(name, shape).status().message().find("quantization_config"),
            std::string::npos);
}

class Fp8LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Checkpoint>> golden =
        Checkpoint::Open(testing::GoldenModelDir("deepseek_v3_fp8"));
    ASSERT_TRUE(golden.ok()) << golden.status();
    config_ = (*golden)->config();
    for (const std::string& name : (*golden)->TensorNames()) {
      const TensorInfo* info = (*golden)->Info(name);
      absl::StatusOr<std::vector<float>> v = (*golden)->ReadF32(name, info->shape, {}, true);
      ASSERT_TRUE(v.ok()) << v.status();
      if (info->dtype == DType::kF8E4M3) {
        // Re-encode the (exact) fp8 values byte for byte.
        std::map<float, int> code_of;  // the exact value of every non-NaN code
        for (int code = 255; code >= 0; --code) {
          if (!std::isnan(F8E4M3ToF32(static_cast<uint8_t>(code)))) {
            code_of[F8E4M3ToF32(static_cast<uint8_t>(code))] = code;  // +0 wins over -0
          }
        }
        std::string bytes;
        for (float x : *v) bytes.push_back(static_cast<char>(code_of.at(x)));
        tensors_.push_back({name, "F8_E4M3", info->shape, bytes});
      } else {
        tensors_.push_back(testing::MakeTensor(name, DType::kF32, info->shape, *v));
      }
    }
    absl::StatusOr<testing::ScopedTempDir> dir =
        testing::ScopedTempDir::Create(::testing::TempDir(), "rami_fp8");
    ASSERT_TRUE(dir.ok());
    dir_ = std::make_unique<testing::ScopedTempDir>(std::move(*dir));
  }
  absl::Status Load() {
    absl::Status written = testing::WriteModelDir(
        dir_->path(), config_, {{"model.safetensors", testing::BuildSafetensors(tensors_)}});
    if (!written.ok()) return written;
    return Model::Load(dir_->path(), {}).status();
  }
  nlohmann::json config_;
  std::vector<testing::TensorSpec> tensors_;
  std::unique_ptr<testing::ScopedTempDir> dir_;
};

TEST_F(Fp8LoadTest, LoadsAndNamesMissingOrMisshapedScales) {
  ASSERT_TRUE(Load().ok()) << Load();
  const std::string scale = "model.layers.0.mlp.down_proj.weight_scale_inv";
  std::vector<testing::TensorSpec> all = tensors_;
  std::erase_if(tensors_, [&](const testing::TensorSpec& t) { return t.name == scale; });
  absl::Status s = Load();
  EXPECT_NE(s.message().find("without its block scales \"" + scale + "\""), std::string::npos) << s;
  tensors_ = all;
  for (testing::TensorSpec& t : tensors_) {
    if (t.name == scale) t = testing::MakeTensor(scale, DType::kF32, {1, 1}, {1.0f});
  }
  s = Load();
  EXPECT_NE(s.message().find(scale), std::string::npos) << s;
  EXPECT_NE(s.message().find("expected shape [2, 4]"), std::string::npos) << s;
  tensors_ = all;
  config_.erase("quantization_config");
  s = Load();
  EXPECT_NE(s.message().find("quantization_config"), std::string::npos) << s;
}

}  // namespace
}  // namespace rami
