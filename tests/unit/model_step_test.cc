// Model::Forward rejects bad steps with a clear status and leaves the cache as it was; a
// ModelShape has the shapes of a loaded model's shard and reserves steps without weights.
#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "worker/checkpoint/config_parser.h"
#include "worker/cpu/model.h"

namespace rami {

using engine::ModelShape;

using checkpoint::ParseModelConfig;

using checkpoint::ModelConfig;
using checkpoint::ShardDims;
using checkpoint::ShardSpec;
using collectives::SingleRankCollectives;
using cpu::Model;
using engine::SequenceChunk;
using kv::CachePolicy;
using kv::KvCache;

namespace {

class ModelStepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Model>> model =
        Model::Load(std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/qwen3", {});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    // 2 layers × 2 KV heads = 4 streams: 8 pages of 4 tokens hold 8 tokens per sequence.
    absl::StatusOr<std::unique_ptr<KvCache>> cache =
        model_->shape().MakeCache({.page_size = 4, .num_pages = 8}, CachePolicy::Dense());
    ASSERT_TRUE(cache.ok()) << cache.status();
    cache_ = std::move(*cache);
    ASSERT_TRUE(cache_->AddSequence(1).ok());
  }
  absl::Status Step(std::vector<SequenceChunk> chunks) {
    return model_->Forward(chunks, *cache_, comm_).status();
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<KvCache> cache_;
  SingleRankCollectives comm_;
};

void ExpectError(const absl::Status& s, absl::StatusCode code, const std::string& needle) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_NE(s.message().find(needle), std::string::npos) << s;
}

TEST_F(ModelStepTest, BadStepsFailCleanly) {
  ExpectError(Step({}), absl::StatusCode::kInvalidArgument, "no sequences");
  ExpectError(Step({{.seq_id = 2, .tokens = {1}}}), absl::StatusCode::kNotFound,
              "unknown sequence 2");
  ExpectError(Step({{.seq_id = 1, .tokens = {1}}, {.seq_id = 1, .tokens = {2}}}),
              absl::StatusCode::kInvalidArgument, "appears twice");
  ExpectError(Step({{.seq_id = 1, .tokens = {}}}), absl::StatusCode::kInvalidArgument, "no tokens");
  ExpectError(Step({{.seq_id = 1, .tokens = {3, 256}}}), absl::StatusCode::kInvalidArgument,
              "token id 256 outside [0, 256)");
  ExpectError(Step({{.seq_id = 1, .tokens = {3, -1}}}), absl::StatusCode::kInvalidArgument,
              "token id -1");
  EXPECT_EQ(cache_->Length(1), 0);
  EXPECT_EQ(cache_->pool().free_pages(), 8);
}

TEST_F(ModelStepTest, OutOfPagesLeavesTheCacheUnchanged) {
  ASSERT_TRUE(Step({{.seq_id = 1, .tokens = {1, 2, 3, 4, 5}}}).ok());  // 2 pages per stream
  ASSERT_TRUE(cache_->AddSequence(2).ok());
  ExpectError(Step({{.seq_id = 1, .tokens = {6}}, {.seq_id = 2, .tokens = {1, 2, 3, 4, 5}}}),
              absl::StatusCode::kResourceExhausted, "8 pages");
  EXPECT_EQ(cache_->Length(1), 5);
  EXPECT_EQ(cache_->Length(2), 0);
  EXPECT_EQ(cache_->pool().free_pages(), 0);  // sequence 1 holds them all
  ASSERT_TRUE(cache_->FreeSequence(1).ok());
  EXPECT_TRUE(Step({{.seq_id = 2, .tokens = {1, 2, 3, 4, 5}}}).ok());
}

// Qwen3-8B's config.json (the keys rami reads).
ModelConfig Qwen3_8B() {
  const nlohmann::json j = nlohmann::json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "vocab_size": 151936, "hidden_size": 4096,
    "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000,
    "max_position_embeddings": 40960, "tie_word_embeddings": false, "eos_token_id": 151645})");
  absl::StatusOr<ModelConfig> c = ParseModelConfig(j, "qwen3-8b/config.json");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ModelConfig{};
}

TEST(ModelShapeTest, HasTheShardDimsAndRopeOfTheConfig) {
  const ModelConfig config = Qwen3_8B();
  for (const ShardSpec& shard :
       {ShardSpec{.rank = 0, .world_size = 1}, ShardSpec{.rank = 0, .world_size = 2},
        ShardSpec{.rank = 1, .world_size = 2}}) {
    SCOPED_TRACE(testing::Message() << "rank " << shard.rank << " of " << shard.world_size);
    absl::StatusOr<ModelShape> shape = ModelShape::Make(config, shard);
    ASSERT_TRUE(shape.ok()) << shape.status();
    const ShardDims& d = shape->dims();
    const int t = shard.world_size;
    EXPECT_EQ(d.q_heads, 32 / t);
    EXPECT_EQ(d.kv_heads, 8 / t);
    EXPECT_EQ(d.intermediate, 12288 / t);
    EXPECT_EQ(d.vocab, 151936 / t);
    EXPECT_EQ(d.vocab_start, shard.rank * 151936 / t);
    EXPECT_EQ(shape->config().num_layers, 36);
    EXPECT_EQ(shape->shard().rank, shard.rank);
    EXPECT_EQ(shape->rope().inv_freq.size(), 64u);  // head_dim / 2
    EXPECT_EQ(shape->KvPageBytes(16, sizeof(float)), 16 * 2 * 128 * 4);
  }
  // The shard must divide the model (32 query heads over 3 ranks do not).
  EXPECT_EQ(ModelShape::Make(config, {.rank = 0, .world_size = 3}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A vocabulary that does not divide the world: every rank holds ceil(V / world) rows from
// rank · that, the last ones partly (or wholly) padding.
TEST(ModelShapeTest, PadsAVocabularyThatDoesNotDivideTheWorld) {
  ModelConfig config = Qwen3_8B();
  config.vocab_size = 251;
  const struct {
    int world, rank, vocab, start, real;
  } cases[] = {{1, 0, 251, 0, 251},
               {2, 0, 126, 0, 126},
               {2, 1, 126, 126, 125},
               {4, 3, 63, 189, 62},
               {8, 7, 32, 224, 27}};
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::Message() << "rank " << c.rank << " of " << c.world);
    absl::StatusOr<ModelShape> shape =
        ModelShape::Make(config, {.rank = c.rank, .world_size = c.world});
    ASSERT_TRUE(shape.ok()) << shape.status();
    EXPECT_EQ(shape->dims().vocab, c.vocab);
    EXPECT_EQ(shape->dims().vocab_start, c.start);
    EXPECT_EQ(shape->dims().vocab_real, c.real);
  }
  config.vocab_size = 5;  // more ranks than rows to spare: the last rank holds padding only
  absl::StatusOr<ModelShape> tiny = ModelShape::Make(config, {.rank = 3, .world_size = 4});
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(tiny->dims().vocab, 2);
  EXPECT_EQ(tiny->dims().vocab_real, 0);
}

TEST(ModelShapeTest, ReservesWithoutWeightsAndLeavesTheCacheAsItWasOnAbort) {
  absl::StatusOr<ModelShape> shape = ModelShape::Make(Qwen3_8B(), {.rank = 0, .world_size = 2});
  ASSERT_TRUE(shape.ok()) << shape.status();
  absl::StatusOr<std::unique_ptr<KvCache>> cache = shape->MakeCache(
      {.page_size = 16, .num_pages = 4096, .allocate_storage = false}, CachePolicy::Dense());
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->num_kv_heads(), 4);  // the rank's heads
  ASSERT_TRUE((*cache)->AddSequence(1).ok());
  std::vector<SequenceChunk> chunks(1);
  chunks[0].seq_id = 1;
  chunks[0].tokens = {1, 2, 3};
  // A bad step reserves nothing.
  std::vector<SequenceChunk> bad = chunks;
  bad[0].tokens.push_back(151936);
  ExpectError(shape->Reserve(bad, **cache), absl::StatusCode::kInvalidArgument, "token id 151936");
  EXPECT_EQ((*cache)->pool().free_pages(), 4096);
  // Reserve works (the bookkeeping needs no weights); aborting returns the reservation.
  ASSERT_TRUE(shape->Reserve(chunks, **cache).ok());
  EXPECT_LT((*cache)->pool().free_pages(), 4096);
  (*cache)->AbortAppend(1);
  EXPECT_EQ((*cache)->Length(1), 0);
  EXPECT_EQ((*cache)->pool().free_pages(), 4096);
}

}  // namespace
}  // namespace rami
