// Prompt log-probs over gRPC (PrefillChunk.prompt_logprobs → StepResult.prompt_logprobs) on
// rami-worker processes: a prompt in two chunks scores every position but 0, in order; TP 2
// equals TP 1 (within fp32 tolerance: the vocab-parallel LM head sums in another order) and both
// ranks of TP 2 return the very same scores (the gathered logits are the same on every rank); a
// replay with prompt_logprobs is refused naming the field, on every rank.
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "tests/integration/worker_group.h"

namespace rami::testing {
namespace {

namespace v1 = worker::v1;

constexpr int64_t kKvBytes = 8 << 20;

// Two steps of one sequence, 9 then 14 tokens, scored with 3 top tokens: [rank][token].
std::vector<std::vector<v1::PromptTokenLogprob>> ScorePrompt(WorkerGroup& group) {
  std::vector<std::vector<v1::PromptTokenLogprob>> out(group.size());
  int32_t next = 0;
  for (int step = 0; step < 2; ++step) {
    v1::StepPlan plan;
    plan.set_step_id(step + 1);
    v1::PrefillChunk* p = plan.add_prefills();
    p->set_seq_id(3);
    p->set_create(step == 0);
    if (step == 0) p->mutable_sampling()->set_logprobs(3);
    for (int t = 0; t < (step == 0 ? 9 : 14); ++t, ++next) p->add_token_ids((next * 37 + 11) % 256);
    p->set_prompt_logprobs(true);
    const std::vector<v1::StepResult> results = group.Step(plan);
    for (int r = 0; r < group.size(); ++r) {
      EXPECT_EQ(results[r].error_code(), 0) << results[r].error_message();
      if (results[r].prompt_logprobs_size() != 1) {
        ADD_FAILURE() << "rank " << r << " step " << step << ": no prompt log-probs";
        continue;
      }
      EXPECT_EQ(results[r].prompt_logprobs(0).seq_id(), 3);
      for (const v1::PromptTokenLogprob& t : results[r].prompt_logprobs(0).tokens()) {
        out[r].push_back(t);
      }
    }
  }
  return out;
}

class WorkerPromptLogprobsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WorkerPromptLogprobsTest, TensorParallelTwoEqualsOne) {
  WorkerGroup tp1(1), tp2(2);
  ASSERT_TRUE(tp1.ok() && tp2.ok());
  ASSERT_TRUE(tp1.Load(GoldenModelDir(GetParam()), kKvBytes).ok());
  const absl::Status loaded = tp2.Load(GoldenModelDir(GetParam()), kKvBytes);
  ASSERT_TRUE(loaded.ok()) << loaded;
  const auto one = ScorePrompt(tp1);
  const auto two = ScorePrompt(tp2);
  ASSERT_EQ(one[0].size(), 22u);  // 23 tokens, position 0 not scored
  ASSERT_EQ(two[0].size(), one[0].size());
  ASSERT_EQ(two[1].size(), one[0].size());
  for (size_t i = 0; i < one[0].size(); ++i) {
    const v1::PromptTokenLogprob& want = one[0][i];
    EXPECT_EQ(want.position(), static_cast<int64_t>(i) + 1);
    EXPECT_EQ(want.token_id(), (static_cast<int>(i + 1) * 37 + 11) % 256);
    EXPECT_LT(want.logprob(), 0.0f);
    ASSERT_EQ(want.top_size(), 3);
    for (int r = 0; r < 2; ++r) {
      const v1::PromptTokenLogprob& got = two[r][i];
      EXPECT_EQ(got.position(), want.position());
      EXPECT_EQ(got.token_id(), want.token_id());
      EXPECT_NEAR(got.logprob(), want.logprob(), 1e-4) << "position " << want.position();
      ASSERT_EQ(got.top_size(), 3);
      for (int j = 0; j < 3; ++j) {
        EXPECT_EQ(got.top(j).token_id(), want.top(j).token_id()) << "position " << i + 1;
        EXPECT_NEAR(got.top(j).logprob(), want.top(j).logprob(), 1e-4);
      }
      // The two ranks of a group: bit for bit.
      EXPECT_EQ(got.logprob(), two[0][i].logprob());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, WorkerPromptLogprobsTest, ::testing::Values("qwen3", "qwen3_dms"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(WorkerPromptLogprobs, AReplayIsRefusedOnEveryRank) {
  WorkerGroup group(2);
  ASSERT_TRUE(group.ok());
  ASSERT_TRUE(group.Load(GoldenModelDir("qwen3"), kKvBytes).ok());
  v1::StepPlan plan;
  plan.set_step_id(1);
  v1::PrefillChunk* p = plan.add_prefills();
  p->set_seq_id(1);
  p->set_create(true);
  p->add_token_ids(5);
  p->add_token_ids(6);
  *p->mutable_sampling() = v1::SamplingParams();
  for (const v1::StepResult& r : group.Step(plan)) EXPECT_EQ(r.error_code(), 0);
  plan.set_step_id(2);
  p->set_create(false);
  p->set_generated_tokens(2);
  p->set_prompt_logprobs(true);
  for (const v1::StepResult& r : group.Step(plan)) {
    EXPECT_EQ(r.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << r.error_message();
    EXPECT_NE(r.error_message().find("prompt_logprobs"), std::string::npos) << r.error_message();
    EXPECT_EQ(r.prompt_logprobs_size(), 0);
  }
}

}  // namespace
}  // namespace rami::testing
