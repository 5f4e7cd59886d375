// The JobRunner against a real rami-worker: a group that loaded a model other than the one
// the coordinator's tokenizer and config speak for (another vocabulary, other EOS ids) is
// refused with an error naming the rank and both models; the same worker with the matching
// model serves.
#include <memory>
#include <string>

#include "coordinator/runner/job_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/worker_process.h"

namespace rami::coordinator {
namespace {

using ::testing::HasSubstr;

const std::string kModelDir = std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/qwen3_dms";

RunnerConfig Config() {
  RunnerConfig c;
  c.load.model_dir = kModelDir;
  c.load.page_size = 4;
  c.load.kv_cache_bytes = 1 << 20;
  c.load.max_step_tokens = c.scheduler.max_step_tokens;
  c.load.max_step_sequences = c.scheduler.max_step_sequences;
  c.coordinator_id = "runner-model-check";
  c.worker_auth_token = testing::TestAuthToken();
  return c;
}

absl::Status Serve(testing::WorkerProcess& worker, const api::ModelSpec& spec) {
  const api::ModelFrontEnd model(spec);
  JobRunner runner(Config(), MakeStaticDiscovery({{worker.address()}}), &model);
  return runner.WaitUntilServing(absl::Seconds(60));
}

TEST(RunnerModelCheck, RefusesAGroupThatLoadedAnotherVocabulary) {
  testing::WorkerProcess worker;
  ASSERT_TRUE(worker.ok());
  // The checkpoint has vocab_size 256 and no EOS id in config.json.
  const absl::Status s = Serve(worker, {"qwen3_dms", 300, 512, {}, {}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("rank 0 (" + worker.address() + ")"));
  EXPECT_THAT(s.message(), HasSubstr("vocab_size 256"));
  EXPECT_THAT(s.message(), HasSubstr("vocab_size 300"));
}

TEST(RunnerModelCheck, RefusesAGroupWithOtherEosIds) {
  testing::WorkerProcess worker;
  ASSERT_TRUE(worker.ok());
  const absl::Status s = Serve(worker, {"qwen3_dms", 256, 512, {5}, {5}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("EOS ids [5]"));
}

TEST(RunnerModelCheck, ServesTheMatchingModel) {
  testing::WorkerProcess worker;
  ASSERT_TRUE(worker.ok());
  absl::StatusOr<api::ModelFrontEnd> model = api::ModelFrontEnd::Load(kModelDir);
  ASSERT_TRUE(model.ok()) << model.status();
  JobRunner runner(Config(), MakeStaticDiscovery({{worker.address()}}), &*model);
  EXPECT_TRUE(runner.WaitUntilServing(absl::Seconds(60)).ok());
  EXPECT_TRUE(runner.healthy());
}

}  // namespace
}  // namespace rami::coordinator
