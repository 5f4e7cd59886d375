// JobState: branches created with their own random streams, found by index on whatever group
// they run on, dropped with their group, and the job's KV totals over its groups.
#include "coordinator/runner/job_state.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rami::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

api::ValidatedRequest Request(int n) {
  api::ValidatedRequest r;
  r.prompt_token_ids = {1, 2, 3};
  r.n = n;
  r.sampling.seed = UINT64_MAX - 1;  // branch seeds wrap
  r.logprobs = 2;
  r.stopping.max_tokens = 8;
  r.aggregation.pruning.confidence_top_k = 5;
  return r;
}

std::unique_ptr<JobState> Make(int n) {
  absl::StatusOr<std::unique_ptr<JobState>> job = JobState::Create(7, Request(n), nullptr);
  EXPECT_TRUE(job.ok()) << job.status();
  return *std::move(job);
}

TEST(JobState, CreatesOneRecordPerBranchWithItsOwnSeed) {
  std::unique_ptr<JobState> job = Make(3);
  EXPECT_EQ(job->n(), 3);
  EXPECT_EQ(job->facts().id, 7);
  EXPECT_EQ(job->facts().max_tokens, 8);
  EXPECT_THAT(job->facts().prompt, ElementsAre(1, 2, 3));
  EXPECT_TRUE(job->facts().branches.empty());  // they live in the parts
  std::vector<Branch> unplaced = job->TakeUnplaced();
  ASSERT_EQ(unplaced.size(), 3u);
  EXPECT_EQ(unplaced[0].sampling.seed, UINT64_MAX - 1);
  EXPECT_EQ(unplaced[1].sampling.seed, UINT64_MAX);
  EXPECT_EQ(unplaced[2].sampling.seed, 0u);     // wrapped
  EXPECT_EQ(unplaced[2].sampling.logprobs, 5);  // DeepConf's top-k beats the client's 2
  EXPECT_TRUE(job->TakeUnplaced().empty());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(job->branch(i), nullptr);  // on no group yet
}

TEST(JobState, RefusesAnAnswerRegexThatDoesNotCompile) {
  api::ValidatedRequest r = Request(1);
  r.aggregation.extractor_regex = "(";
  absl::StatusOr<std::unique_ptr<JobState>> job = JobState::Create(1, r, nullptr);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JobState, FindsEachBranchByIndexOnItsGroup) {
  std::unique_ptr<JobState> job = Make(4);
  std::vector<Branch> branches = job->TakeUnplaced();
  // Branches 3 and 1 on group 2, 0 and 2 on group 5: slots differ from indices.
  EXPECT_TRUE(job->AddToGroup(2, branches[3]));
  EXPECT_TRUE(job->AddToGroup(5, branches[0]));
  EXPECT_FALSE(job->AddToGroup(2, branches[1]));
  EXPECT_FALSE(job->AddToGroup(5, branches[2]));
  EXPECT_THAT(job->groups_used, ElementsAre(2, 5));
  for (int i = 0; i < 4; ++i) {
    Branch* b = job->branch(i);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->index, i);
    EXPECT_EQ(b->phase, BranchPhase::kWaiting);
    EXPECT_EQ(job->state(i).group, i % 2 == 0 ? 5 : 2);
  }
  // Each part is a scheduler Job with the job's facts.
  EXPECT_THAT(job->parts.at(2).prompt, ElementsAre(1, 2, 3));
  EXPECT_EQ(job->parts.at(5).max_tokens, 8);
  job->parts.at(2).branches[0].seq = 11;
  EXPECT_TRUE(job->HoldsSequences());
  EXPECT_EQ(job->branch(3)->seq, 11);
}

TEST(JobState, DroppingAGroupReturnsItsUnfinishedBranchesToPlaceAgain) {
  std::unique_ptr<JobState> job = Make(3);
  for (Branch& b : job->TakeUnplaced()) job->AddToGroup(1, std::move(b));
  job->branch(0)->tokens = {9, 9};
  job->branch(0)->phase = BranchPhase::kRunning;
  job->branch(0)->seq = 4;
  job->branch(1)->phase = BranchPhase::kFinished;
  job->state(1).reason = aggregation::FinishReason::kEos;
  std::vector<Branch> moving = job->DropGroup(1);
  ASSERT_EQ(moving.size(), 2u);
  EXPECT_EQ(moving[0].index, 0);
  EXPECT_EQ(moving[1].index, 2);
  EXPECT_TRUE(job->parts.empty());
  EXPECT_FALSE(job->HoldsSequences());
  EXPECT_EQ(job->branch(0), nullptr);
  // Placed again: a branch with tokens comes back preempted (re-forked and replayed).
  job->AddToGroup(3, std::move(moving[0]));
  job->AddToGroup(3, std::move(moving[1]));
  EXPECT_EQ(job->branch(0)->phase, BranchPhase::kPreempted);
  EXPECT_EQ(job->branch(0)->seq, -1);
  EXPECT_THAT(job->branch(0)->tokens, ElementsAre(9, 9));
  EXPECT_EQ(job->branch(2)->phase, BranchPhase::kWaiting);
  EXPECT_EQ(job->FinishedBranches(), 1);
  EXPECT_FALSE(job->AllBranchesFinished());
}

TEST(JobState, KvTotalsCoverTheGroupsTheJobIsStillOn) {
  std::unique_ptr<JobState> job = Make(2);
  std::vector<Branch> branches = job->TakeUnplaced();
  job->AddToGroup(1, branches[0]);
  job->AddToGroup(2, branches[1]);
  job->SetGroupKv(1, {.bytes = 100, .live_tokens = 10, .logical_tokens = 40});
  job->SetGroupKv(2, {.bytes = 300, .live_tokens = 30, .logical_tokens = 60});
  EXPECT_EQ(job->kv_bytes, 400);
  EXPECT_DOUBLE_EQ(job->compression_ratio, 100.0 / 40.0);
  job->SetGroupKv(9, {.bytes = 999, .live_tokens = 1, .logical_tokens = 1});  // not on it
  EXPECT_EQ(job->kv_bytes, 400);
  job->DropGroup(2);  // its memory went with it
  EXPECT_EQ(job->kv_bytes, 100);
  EXPECT_EQ(job->peak_kv_bytes, 400);
  EXPECT_DOUBLE_EQ(job->compression_ratio, 4.0);
}

TEST(JobState, PromptLogprobsAreKeptByPositionAndCheckedAgainstThePrompt) {
  api::ValidatedRequest r = Request(1);
  r.prompt_token_ids = {5, 6, 7, 8};
  r.prompt_logprobs = 1;
  std::unique_ptr<JobState> job = *JobState::Create(1, r, nullptr);
  EXPECT_TRUE(job->facts().prompt_logprobs);
  EXPECT_EQ(job->facts().root_sampling.logprobs, 1);  // the root's top-n is the prompt's
  EXPECT_FALSE(job->PromptScored());
  worker::v1::PromptLogprobs first;
  first.set_seq_id(3);
  auto add = [](worker::v1::PromptLogprobs& p, int64_t position, int32_t token, float logprob) {
    worker::v1::PromptTokenLogprob* t = p.add_tokens();
    t->set_position(position);
    t->set_token_id(token);
    t->set_logprob(logprob);
    t->add_top()->set_token_id(token);
  };
  add(first, 1, 6, -1.0f);
  add(first, 2, 9, -2.0f);  // not the prompt's token: ignored
  add(first, 4, 1, -3.0f);  // past the prompt: ignored
  add(first, 0, 5, -4.0f);  // the first token has nothing before it: ignored
  job->RecordPromptLogprobs(first);
  EXPECT_FALSE(job->PromptScored());
  worker::v1::PromptLogprobs second;
  add(second, 2, 7, -2.5f);
  add(second, 3, 8, -0.5f);
  job->RecordPromptLogprobs(second);
  EXPECT_TRUE(job->PromptScored());
  const std::vector<rami::v1::TokenLogprobs> scored = job->PromptLogprobs();
  ASSERT_EQ(scored.size(), 3u);
  EXPECT_EQ(scored[0].token_id(), 6);
  EXPECT_FLOAT_EQ(scored[1].logprob(), -2.5f);
  EXPECT_EQ(scored[2].top_size(), 1);
}

TEST(JobState, AScoreOnlyJobHasOnlyARoot) {
  api::ValidatedRequest r = Request(0);
  r.prompt_logprobs = 0;
  r.score_only = true;
  std::unique_ptr<JobState> job = *JobState::Create(1, r, nullptr);
  EXPECT_EQ(job->n(), 0);
  EXPECT_TRUE(job->TakeUnplaced().empty());
  EXPECT_FALSE(job->RootsPrefilled());
  job->AddRootOnly(4);
  EXPECT_TRUE(job->parts.at(4).branches.empty());
  EXPECT_FALSE(job->RootsPrefilled());
  job->parts.at(4).root_ready = true;
  EXPECT_TRUE(job->RootsPrefilled());
  EXPECT_THAT(job->groups_used, ElementsAre(4));
}

}  // namespace
}  // namespace rami::coordinator
