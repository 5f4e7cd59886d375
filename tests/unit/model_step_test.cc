// Model::Forward rejects bad steps with a clear status and leaves the cache as it was.
#include <string>

#include "gtest/gtest.h"
#include "worker/model.h"

namespace rami {
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
        model_->MakeCache({.page_size = 4, .num_pages = 8}, CachePolicy::Dense());
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

}  // namespace
}  // namespace rami
