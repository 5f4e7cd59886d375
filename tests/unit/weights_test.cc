// Model loading of whole checkpoints: every tensor's name and shape is checked against the
// architecture, with errors that name the tensor and what was expected. Variants of the
// golden qwen3 checkpoint are written to a temporary directory with one defect each.
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/safetensors_writer.h"
#include "worker/checkpoint/checkpoint.h"
#include "worker/checkpoint/config_parser.h"
#include "worker/checkpoint/dtype.h"
#include "worker/checkpoint/weights.h"
#include "worker/cpu/model.h"

namespace rami {

using checkpoint::BF16ToF32;
using checkpoint::Checkpoint;
using checkpoint::DType;
using checkpoint::F16ToF32;
using checkpoint::F32ToBF16;
using checkpoint::F32ToF16;
using checkpoint::ShardSpec;
using checkpoint::TensorInfo;
using collectives::SingleRankCollectives;
using cpu::Model;
using engine::ForwardResult;
using engine::SequenceChunk;
using kv::CachePolicy;
using kv::KvCache;

namespace {

using testing::TensorSpec;

class WeightsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Checkpoint>> golden =
        Checkpoint::Open(std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/qwen3");
    ASSERT_TRUE(golden.ok()) << golden.status();
    config_ = (*golden)->config();
    for (const std::string& name : (*golden)->TensorNames()) {
      const TensorInfo* info = (*golden)->Info(name);
      absl::StatusOr<std::vector<float>> values = (*golden)->ReadF32(name, info->shape);
      ASSERT_TRUE(values.ok()) << values.status();
      tensors_.push_back(testing::MakeTensor(name, DType::kF32, info->shape, *values));
    }
    absl::StatusOr<testing::ScopedTempDir> dir =
        testing::ScopedTempDir::Create(::testing::TempDir(), "rami_weights");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::make_unique<testing::ScopedTempDir>(std::move(*dir));
  }

  // Writes config_ and tensors_ (after `edit`) and loads them.
  absl::Status Load(const ShardSpec& shard = {}) {
    absl::Status written = testing::WriteModelDir(
        dir_->path(), config_, {{"model.safetensors", testing::BuildSafetensors(tensors_)}});
    if (!written.ok()) return written;
    return Model::Load(dir_->path(), shard).status();
  }
  TensorSpec& Tensor(const std::string& name) {
    for (TensorSpec& t : tensors_) {
      if (t.name == name) return t;
    }
    ADD_FAILURE() << "no tensor " << name;
    return tensors_[0];
  }

  nlohmann::json config_;
  std::vector<TensorSpec> tensors_;
  std::unique_ptr<testing::ScopedTempDir> dir_;
};

void ExpectError(const absl::Status& s, absl::StatusCode code,
                 const std::vector<std::string>& needles) {
  EXPECT_EQ(s.code(), code) << s;
  for (const std::string& needle : needles) {
    EXPECT_NE(s.message().find(needle), std::string::npos) << "'" << needle << "' not in " << s;
  }
}

TEST_F(WeightsTest, RewrittenCheckpointLoads) { EXPECT_TRUE(Load().ok()); }

// bf16 and fp16 files run the same model as fp32 files holding the same (rounded) values:
// logits bit-identical.
TEST_F(WeightsTest, HalfPrecisionWeightsEqualTheirFloatValues) {
  std::vector<TensorSpec> half, rounded;
  for (const TensorSpec& t : tensors_) {
    std::vector<float> values(t.bytes.size() / sizeof(float));
    std::memcpy(values.data(), t.bytes.data(), t.bytes.size());
    const bool fp16 = t.name.find("norm") != std::string::npos;  // some of each
    for (float& v : values) v = fp16 ? F16ToF32(F32ToF16(v)) : BF16ToF32(F32ToBF16(v));
    half.push_back(testing::MakeTensor(t.name, fp16 ? DType::kF16 : DType::kBF16, t.shape, values));
    rounded.push_back(testing::MakeTensor(t.name, DType::kF32, t.shape, values));
  }
  std::vector<float> logits[2];
  for (int variant = 0; variant < 2; ++variant) {
    tensors_ = variant == 0 ? half : rounded;
    ASSERT_TRUE(Load().ok());
    absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir_->path(), {});
    ASSERT_TRUE(model.ok()) << model.status();
    std::unique_ptr<KvCache> cache =
        *(*model)->shape().MakeCache({.page_size = 4, .num_pages = 64}, CachePolicy::Dense());
    ASSERT_TRUE(cache->AddSequence(0).ok());
    SingleRankCollectives comm;
    const std::vector<SequenceChunk> step = {{.seq_id = 0, .tokens = {5, 17, 200, 3}}};
    absl::StatusOr<ForwardResult> out = (*model)->Forward(step, *cache, comm);
    ASSERT_TRUE(out.ok()) << out.status();
    logits[variant] = out->logits;
  }
  ASSERT_EQ(logits[0].size(), 256u);
  EXPECT_EQ(std::memcmp(logits[0].data(), logits[1].data(), logits[0].size() * sizeof(float)), 0);
}

TEST_F(WeightsTest, WrongShapeNamesTensorAndShapes) {
  TensorSpec& t = Tensor("model.layers.1.self_attn.k_norm.weight");
  t = testing::MakeTensor(t.name, DType::kF32, {16}, std::vector<float>(16, 1.0f));
  ExpectError(Load(), absl::StatusCode::kInvalidArgument,
              {"model.layers.1.self_attn.k_norm.weight", "[32]", "[16]"});
}

TEST_F(WeightsTest, MissingTensorIsNamed) {
  std::erase_if(tensors_, [](const TensorSpec& t) { return t.name == "lm_head.weight"; });
  ExpectError(Load(), absl::StatusCode::kNotFound, {"lm_head.weight"});
}

TEST_F(WeightsTest, UnexpectedTensorIsNamed) {
  tensors_.push_back(testing::MakeTensor("model.layers.0.self_attn.dms_proj_alpha.weight",
                                         DType::kF32, {2, 64}, std::vector<float>(128)));
  ExpectError(Load(), absl::StatusCode::kInvalidArgument,
              {"unexpected tensors", "model.layers.0.self_attn.dms_proj_alpha.weight"});
}

TEST_F(WeightsTest, UnsupportedDtypeIsNamed) {
  TensorSpec& t = Tensor("model.norm.weight");
  t.dtype = "I32";
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {"model.norm.weight", "I32"});
}

TEST_F(WeightsTest, IndivisibleTensorParallelSize) {
  ExpectError(Load({.rank = 0, .world_size = 4}), absl::StatusCode::kInvalidArgument,
              {"num_key_value_heads (2) is not divisible by the tensor-parallel size 4"});
}

TEST_F(WeightsTest, DmsAdapterNeedsItsWeights) {
  config_["dms_window_size"] = 8;
  EXPECT_TRUE(Load().ok());  // borrowed-neuron mode has no extra weights
  config_["dms_separate_alpha"] = true;
  ExpectError(Load(), absl::StatusCode::kNotFound,
              {"model.layers.0.self_attn.dms_proj_alpha.weight"});
}

// The layer-at-a-time load (what the CUDA backend streams to the device) hands over the same
// layers as the whole-model load, in order, and stops at the first error of its consumer.
TEST(WeightsByLayerTest, DeliversTheLayersOfLoadWeightsInOrder) {
  const std::string dir = std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/qwen3";
  absl::StatusOr<std::unique_ptr<Checkpoint>> golden = Checkpoint::Open(dir);
  ASSERT_TRUE(golden.ok()) << golden.status();
  absl::StatusOr<checkpoint::ModelConfig> config =
      checkpoint::ParseModelConfig((*golden)->config(), dir + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  for (const ShardSpec shard : {ShardSpec{}, ShardSpec{.rank = 1, .world_size = 2}}) {
    absl::StatusOr<checkpoint::ModelWeights> whole =
        checkpoint::LoadWeights(**golden, *config, shard);
    ASSERT_TRUE(whole.ok()) << whole.status();
    std::vector<int> order;
    absl::StatusOr<checkpoint::ModelWeights> top = checkpoint::LoadWeightsByLayer(
        **golden, *config, shard, [&](int layer, checkpoint::LayerWeights&& l) {
          order.push_back(layer);
          EXPECT_EQ(l.qkv, whole->layers[layer].qkv) << "layer " << layer;
          EXPECT_EQ(l.down, whole->layers[layer].down) << "layer " << layer;
          EXPECT_EQ(l.k_norm, whole->layers[layer].k_norm) << "layer " << layer;
          return absl::OkStatus();
        });
    ASSERT_TRUE(top.ok()) << top.status();
    EXPECT_TRUE(top->layers.empty());
    EXPECT_EQ(top->embed, whole->embed);
    EXPECT_EQ(top->lm_head, whole->lm_head);
    EXPECT_EQ(top->final_norm, whole->final_norm);
    std::vector<int> want(config->num_layers);
    for (int i = 0; i < config->num_layers; ++i) want[i] = i;
    EXPECT_EQ(order, want);
  }
  int calls = 0;
  absl::StatusOr<checkpoint::ModelWeights> failed =
      checkpoint::LoadWeightsByLayer(**golden, *config, {}, [&](int, checkpoint::LayerWeights&&) {
        ++calls;
        return absl::ResourceExhaustedError("device full");
      });
  EXPECT_EQ(failed.status(), absl::ResourceExhaustedError("device full"));
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace rami
