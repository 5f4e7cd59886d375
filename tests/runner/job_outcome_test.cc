// A job's outcome from its tokens: deltas and stops per branch, answers extracted, votes
// aggregated into the Result, DeepConf and decided-vote pruning, failures — read back from
// the events a client would receive. Text comes from a real tokenizer (the golden Qwen one).
#include "coordinator/runner/job_outcome.h"

#include <algorithm>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/test_models.h"

namespace rami::coordinator {
namespace {

namespace v1 = rami::v1;

const api::ModelFrontEnd& Qwen() {
  static const api::ModelFrontEnd* model =
      new api::ModelFrontEnd(api::testing::LoadOrDie(api::testing::QwenModelDir()));
  return *model;
}

api::ValidatedRequest Request(int n) {
  api::ValidatedRequest r;
  r.prompt_token_ids = {1, 2, 3};
  r.n = n;
  r.stopping.max_tokens = 64;
  r.stopping.eos_token_ids = Qwen().eos_token_ids();
  r.stopping.stop_token_ids = Qwen().eos_token_ids();  // sorted, as validation leaves them
  std::sort(r.stopping.stop_token_ids.begin(), r.stopping.stop_token_ids.end());
  r.aggregation.policy = api::AggregationPolicy::kMajorityVote;
  r.stream_deltas = true;
  return r;
}

// A job of `request.n` branches, all placed on group 1 and running.
std::unique_ptr<JobState> Start(const api::ValidatedRequest& request) {
  std::unique_ptr<JobState> job = *JobState::Create(1, request, Qwen().tokenizer());
  job->handle = std::make_shared<JobHandle>();
  job->handle->id = "job-1";
  int seq = 10;
  for (Branch& b : job->TakeUnplaced()) {
    b.phase = BranchPhase::kRunning;
    b.seq = seq++;
    job->AddToGroup(1, std::move(b));
  }
  for (int i = 0; i < job->n(); ++i) {  // AddToGroup starts placed branches over
    job->branch(i)->phase = BranchPhase::kRunning;
    job->branch(i)->seq = 10 + i;
  }
  return job;
}

// Feeds `text`'s tokens (then EOS when `eos`) to branch `i`.
void Say(JobState& job, int i, const std::string& text, bool eos = true) {
  std::vector<int32_t> ids = *Qwen().tokenizer()->Encode(text, /*add_special_tokens=*/false);
  if (eos) ids.push_back(Qwen().eos_token_ids()[0]);
  for (int32_t id : ids) {
    Branch* b = job.branch(i);
    if (b->phase != BranchPhase::kRunning) return;
    worker::v1::SampledToken t;
    t.set_seq_id(b->seq);
    t.set_token_id(id);
    t.set_logprob(-0.5f);
    t.set_index(static_cast<int64_t>(b->tokens.size()));
    AcceptToken(job, *b, t);
  }
}

std::vector<v1::GenerateEvent> Drain(JobState& job) {
  std::vector<v1::GenerateEvent> events;
  while (auto e = job.handle->events.Pop(absl::ZeroDuration())) events.push_back(*e);
  return events;
}

TEST(JobOutcome, BranchesStreamTextEndOnEosAndTheJobVotes) {
  std::unique_ptr<JobState> job = Start(Request(3));
  Say(*job, 0, "so \\boxed{42}");
  Say(*job, 1, "then \\boxed{7}");
  Say(*job, 2, "thus \\boxed{42}");
  std::string streamed;
  int finished = 0;
  for (const v1::GenerateEvent& e : Drain(*job)) {
    if (e.has_delta() && e.delta().branch() == 0) streamed += e.delta().text();
    if (e.has_branch_finished()) {
      ++finished;
      EXPECT_EQ(e.branch_finished().reason(), v1::EOS);
    }
  }
  EXPECT_EQ(streamed, "so \\boxed{42}");
  EXPECT_EQ(finished, 3);
  EXPECT_EQ(job->state(1).answer, "7");
  ASSERT_TRUE(job->AllBranchesFinished());
  // Finished branches hand their sequences back on the next plan.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(job->branch(i)->free_pending);

  FinishJob(*job);
  std::vector<v1::GenerateEvent> events = Drain(*job);
  ASSERT_EQ(events.size(), 1u);
  const v1::Result& result = events[0].result();
  EXPECT_EQ(result.answer(), "42");
  ASSERT_EQ(result.votes_size(), 2);
  EXPECT_EQ(result.votes(0).answer(), "42");
  EXPECT_EQ(result.votes(0).count(), 2);
  EXPECT_EQ(result.branches_size(), 3);
  EXPECT_EQ(result.usage().prompt_tokens(), 3);
  EXPECT_EQ(job->record.state(), v1::GetJobResponse::FINISHED);
  EXPECT_EQ(job->record.result().answer(), "42");
  FinishJob(*job);  // once only
  EXPECT_TRUE(Drain(*job).empty());
}

TEST(JobOutcome, ADecidedVoteEndsTheRemainingBranches) {
  api::ValidatedRequest r = Request(3);
  r.aggregation.pruning.stop_when_decided = true;
  std::unique_ptr<JobState> job = Start(r);
  Say(*job, 0, "\\boxed{5}");
  Say(*job, 1, "\\boxed{5}");
  Say(*job, 2, "still thinking", /*eos=*/false);
  PruneBranches(*job);  // 2 votes to 0 with one branch left: decided
  EXPECT_EQ(job->state(2).reason, aggregation::FinishReason::kPruned);
  EXPECT_EQ(job->branch(2)->phase, BranchPhase::kFinished);
  EXPECT_TRUE(job->AllBranchesFinished());
}

TEST(JobOutcome, AnUndecidedVoteKeepsBranchesRunning) {
  api::ValidatedRequest r = Request(4);
  r.aggregation.pruning.stop_when_decided = true;
  std::unique_ptr<JobState> job = Start(r);
  Say(*job, 0, "\\boxed{5}");
  Say(*job, 1, "\\boxed{6}");
  PruneBranches(*job);
  EXPECT_FALSE(job->state(2).finished());
  EXPECT_FALSE(job->state(3).finished());
}

TEST(JobOutcome, MaxTokensEndsABranch) {
  api::ValidatedRequest r = Request(1);
  r.stopping.max_tokens = 2;
  std::unique_ptr<JobState> job = Start(r);
  Say(*job, 0, "one two three four", /*eos=*/false);
  EXPECT_EQ(job->state(0).reason, aggregation::FinishReason::kMaxTokens);
  EXPECT_EQ(job->state(0).output->tokens(), 2);
}

TEST(JobOutcome, AFailedJobReportsItsErrorAndFreesItsSequences) {
  std::unique_ptr<JobState> job = Start(Request(2));
  job->parts.at(1).root = 3;
  Say(*job, 0, "\\boxed{1}");
  Drain(*job);
  job->branch(1)->replay_pending = true;  // re-forked after a relocation, replay to come
  FailJob(*job, absl::AbortedError("job aborted by the client"), /*retryable=*/false);
  std::vector<v1::GenerateEvent> events = Drain(*job);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].error().code(), static_cast<int>(absl::StatusCode::kAborted));
  EXPECT_FALSE(events[0].error().retryable());
  EXPECT_EQ(job->record.state(), v1::GetJobResponse::ABORTED);
  EXPECT_TRUE(job->branch(1)->free_pending);
  EXPECT_FALSE(job->branch(1)->replay_pending);  // its sequence is freed, not replayed into
  EXPECT_TRUE(job->parts.at(1).root_free_pending);
  EXPECT_TRUE(job->done);
  FailJob(*job, absl::UnavailableError("again"), true);  // once only
  EXPECT_TRUE(Drain(*job).empty());
  EXPECT_EQ(job->record.state(), v1::GetJobResponse::ABORTED);
}

TEST(JobOutcome, ProgressReportsBranchesAndCompression) {
  std::unique_ptr<JobState> job = Start(Request(2));
  Say(*job, 0, "\\boxed{1}");
  job->SetGroupKv(1, {.bytes = 64, .live_tokens = 8, .logical_tokens = 24});
  Drain(*job);
  SendProgress(*job);
  std::vector<v1::GenerateEvent> events = Drain(*job);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].progress().branches_running(), 1);
  EXPECT_EQ(events[0].progress().branches_finished(), 1);
  EXPECT_EQ(events[0].progress().kv_bytes(), 64);
  EXPECT_DOUBLE_EQ(events[0].progress().compression_ratio(), 3.0);
}

TEST(JobOutcome, EnumsMapOneToOne) {
  EXPECT_EQ(ToProto(aggregation::FinishReason::kStopString), v1::STOP_STRING);
  EXPECT_EQ(ToProto(aggregation::FinishReason::kPruned), v1::PRUNED);
  EXPECT_EQ(ToAggregation(api::AggregationPolicy::kWeightedVote),
            aggregation::AggregationPolicy::kWeightedVote);
}

TEST(JobOutcome, TheResultCarriesThePromptLogprobs) {
  api::ValidatedRequest r = Request(1);
  r.prompt_logprobs = 0;
  std::unique_ptr<JobState> job = Start(r);
  worker::v1::PromptLogprobs scored;
  for (int position : {1, 2}) {
    worker::v1::PromptTokenLogprob* t = scored.add_tokens();
    t->set_position(position);
    t->set_token_id(position + 1);  // the prompt is {1, 2, 3}
    t->set_logprob(-0.25f * position);
  }
  job->RecordPromptLogprobs(scored);
  Say(*job, 0, "\\boxed{1}");
  FinishJob(*job);
  const v1::Result& result = job->record.result();
  ASSERT_EQ(result.prompt_logprobs_size(), 2);
  EXPECT_EQ(result.prompt_logprobs(1).token_id(), 3);
  EXPECT_FLOAT_EQ(result.prompt_logprobs(1).logprob(), -0.5f);
}

}  // namespace
}  // namespace rami::coordinator
