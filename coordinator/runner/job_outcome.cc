// A job's tokens, branch ends, pruning and terminal events.
#include "coordinator/runner/job_outcome.h"

#include <algorithm>
#include <vector>

#include "absl/time/clock.h"

namespace rami::coordinator {
namespace {

namespace v1 = rami::v1;
using aggregation::FinishReason;

v1::GenerateEvent Event(const JobState& job) {
  v1::GenerateEvent event;
  event.set_job_id(job.handle->id);
  return event;
}

// The finished branches as aggregation sees them; with `all`, unfinished ones count as
// aborted (the job is ending).
std::vector<aggregation::BranchOutcome> Outcomes(const JobState& job, bool all) {
  std::vector<aggregation::BranchOutcome> outcomes;
  for (int i = 0; i < job.n(); ++i) {
    const BranchState& b = job.state(i);
    if (!b.finished() && !all) continue;
    outcomes.push_back({i, b.reason.value_or(FinishReason::kAborted), b.answer,
                        b.output->confidence(), b.output->mean_logprob()});
  }
  return outcomes;
}

// Marks every part finished; sequences still held are freed by the next plans (a root may be
// kept as a prefix-cache entry instead, unless `cache_root` is false: a job that failed).
void ReleaseParts(JobState& job, bool cache_root) {
  for (auto& [group, part] : job.parts) {
    for (Branch& b : part.branches) {
      if (b.phase != BranchPhase::kFinished) b.Finish();
    }
    if (part.root >= 0) part.root_free_pending = true;
    part.cache_root = part.cache_root && cache_root;
    part.phase = JobPhase::kFinished;
  }
}

void FillUsage(const JobState& job, int64_t generated, v1::Usage* usage) {
  const absl::Duration elapsed = absl::Now() - job.submitted;
  usage->set_prompt_tokens(static_cast<int64_t>(job.facts().prompt.size()));
  int64_t cached = 0;
  for (const auto& [group, part] : job.parts) cached = std::max(cached, part.cached_tokens);
  usage->set_cached_prompt_tokens(cached);
  usage->set_worker_groups(static_cast<int32_t>(job.groups_used.size()));
  usage->set_relocated_branches(job.relocated_branches);
  usage->set_generated_tokens(generated);
  usage->set_peak_kv_bytes(job.peak_kv_bytes);
  usage->set_compression_ratio(job.compression_ratio);
  usage->set_elapsed_ms(absl::ToDoubleMilliseconds(elapsed));
  if (job.first_token.has_value()) {
    usage->set_time_to_first_token_ms(absl::ToDoubleMilliseconds(*job.first_token - job.submitted));
  }
  usage->set_tokens_per_second(generated / std::max(absl::ToDoubleSeconds(elapsed), 1e-9));
}

}  // namespace

void AcceptToken(JobState& job, Branch& b, const worker::v1::SampledToken& token) {
  b.tokens.push_back(token.token_id());
  const absl::Time now = absl::Now();
  if (!job.first_token.has_value()) job.first_token = now;
  BranchState& state = job.state(b.index);
  if (job.metrics != nullptr) {
    job.metrics->GeneratedTokens(1);
    if (state.last_token.has_value()) {
      job.metrics->InterTokenLatency(absl::ToDoubleSeconds(now - *state.last_token));
    }
  }
  state.last_token = now;
  v1::GenerateEvent event = Event(job);
  v1::Delta* delta = event.mutable_delta();
  delta->set_branch(b.index);
  const std::optional<FinishReason> reason =
      state.output->Add(token, job.request().aggregation.pruning.confidence_top_k, delta);
  if (job.request().stream_deltas) job.handle->events.Push(std::move(event));
  if (reason.has_value()) FinishBranch(job, b.index, *reason);
}

void FinishBranch(JobState& job, int i, FinishReason reason) {
  BranchState& state = job.state(i);
  if (state.finished()) return;
  if (Branch* b = job.branch(i); b != nullptr) b->Finish();
  state.reason = reason;
  if (job.metrics != nullptr) job.metrics->BranchFinished();
  const BranchOutput& out = *state.output;
  state.answer = job.extractor->Extract(out.text());
  if (job.pruner.has_value()) job.pruner->OnBranchFinished(reason, out.confidence());
  v1::GenerateEvent event = Event(job);
  v1::BranchFinished* f = event.mutable_branch_finished();
  f->set_branch(i);
  f->set_reason(ToProto(reason));
  f->set_answer(state.answer);
  f->set_confidence(out.confidence());
  f->set_tokens(static_cast<int32_t>(out.tokens()));
  f->set_text(out.text());
  job.handle->events.Push(std::move(event));
}

void PruneBranches(JobState& job) {
  if (job.pruner.has_value() && job.pruner->has_threshold()) {
    for (int i = 0; i < job.n(); ++i) {
      const BranchState& b = job.state(i);
      if (!b.finished() && job.pruner->ShouldPrune(b.output->confidence(), b.output->tokens())) {
        FinishBranch(job, i, FinishReason::kPruned);
      }
    }
  }
  if (!job.request().aggregation.pruning.stop_when_decided || job.AllBranchesFinished()) return;
  const std::vector<aggregation::BranchOutcome> outcomes = Outcomes(job, /*all=*/false);
  const int remaining = job.n() - static_cast<int>(outcomes.size());
  const aggregation::AggregationPolicy policy = ToAggregation(job.request().aggregation.policy);
  const aggregation::AggregationResult partial = aggregation::Aggregate(policy, outcomes);
  if (!aggregation::VoteDecided(policy, partial.votes, remaining)) return;
  for (int i = 0; i < job.n(); ++i) FinishBranch(job, i, FinishReason::kPruned);
}

void FinishJob(JobState& job) {
  if (job.done) return;
  job.done = true;
  ReleaseParts(job, /*cache_root=*/true);
  const std::vector<aggregation::BranchOutcome> outcomes = Outcomes(job, /*all=*/true);
  const aggregation::AggregationResult agg =
      aggregation::Aggregate(ToAggregation(job.request().aggregation.policy), outcomes);
  v1::GenerateEvent event = Event(job);
  v1::Result* result = event.mutable_result();
  result->set_answer(agg.answer);
  for (const aggregation::Vote& v : agg.votes) {
    v1::Vote* vote = result->add_votes();
    vote->set_answer(v.answer);
    vote->set_count(v.count);
    vote->set_weight(v.weight);
  }
  int64_t generated = 0;
  for (const aggregation::BranchOutcome& o : outcomes) {
    const int64_t tokens = job.state(o.branch).output->tokens();
    v1::BranchSummary* s = result->add_branches();
    s->set_branch(o.branch);
    s->set_reason(ToProto(o.reason));
    s->set_answer(o.answer);
    s->set_confidence(o.confidence);
    s->set_mean_logprob(o.mean_logprob);
    s->set_tokens(static_cast<int32_t>(tokens));
    generated += tokens;
  }
  FillUsage(job, generated, result->mutable_usage());
  for (rami::v1::TokenLogprobs& t : job.PromptLogprobs())
    *result->add_prompt_logprobs() = std::move(t);
  if (job.metrics != nullptr) {
    job.metrics->RequestEnded(metrics::Outcome::kFinished);
    job.metrics->EndToEnd(absl::ToDoubleSeconds(absl::Now() - job.submitted));
    if (job.first_token.has_value()) {
      job.metrics->TimeToFirstToken(absl::ToDoubleSeconds(*job.first_token - job.submitted));
    }
    if (job.peak_kv_bytes > 0) job.metrics->JobCompression(job.compression_ratio);
  }
  job.record.set_state(v1::GetJobResponse::FINISHED);
  job.record.set_branches_finished(static_cast<int32_t>(outcomes.size()));
  *job.record.mutable_result() = *result;
  job.handle->events.Push(std::move(event));
}

void FailJob(JobState& job, const absl::Status& status, bool retryable) {
  if (job.done) return;
  job.done = true;
  const bool aborted = status.code() == absl::StatusCode::kAborted;
  // An aborted job's prompt was computed as well as any; a failed one's may be why it failed.
  ReleaseParts(job, /*cache_root=*/aborted);
  job.record.set_state(aborted ? v1::GetJobResponse::ABORTED : v1::GetJobResponse::FAILED);
  if (job.metrics != nullptr) {
    job.metrics->RequestEnded(aborted ? metrics::Outcome::kAborted : metrics::Outcome::kFailed);
    job.metrics->EndToEnd(absl::ToDoubleSeconds(absl::Now() - job.submitted));
  }
  v1::GenerateEvent event = Event(job);
  event.mutable_error()->set_code(static_cast<int32_t>(status.code()));
  event.mutable_error()->set_message(std::string(status.message()));
  event.mutable_error()->set_retryable(retryable);
  job.handle->events.Push(std::move(event));
}

void SendProgress(JobState& job) {
  job.progress_sent = absl::Now();
  v1::GenerateEvent event = Event(job);
  v1::Progress* p = event.mutable_progress();
  p->set_branches_running(job.RunningBranches());
  p->set_branches_finished(job.FinishedBranches());
  p->set_kv_bytes(job.kv_bytes);
  p->set_compression_ratio(job.compression_ratio);
  job.handle->events.Push(std::move(event));
}

v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kEos:
      return v1::EOS;
    case FinishReason::kStopString:
      return v1::STOP_STRING;
    case FinishReason::kStopToken:
      return v1::STOP_TOKEN;
    case FinishReason::kMaxTokens:
      return v1::MAX_TOKENS;
    case FinishReason::kAborted:
      return v1::ABORTED;
    case FinishReason::kPruned:
      return v1::PRUNED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

aggregation::AggregationPolicy ToAggregation(api::AggregationPolicy p) {
  switch (p) {
    case api::AggregationPolicy::kNone:
      return aggregation::AggregationPolicy::kNone;
    case api::AggregationPolicy::kMajorityVote:
      return aggregation::AggregationPolicy::kMajorityVote;
    case api::AggregationPolicy::kWeightedVote:
      return aggregation::AggregationPolicy::kWeightedVote;
    case api::AggregationPolicy::kBestLogprob:
      return aggregation::AggregationPolicy::kBestLogprob;
  }
  return aggregation::AggregationPolicy::kNone;
}

}  // namespace rami::coordinator
