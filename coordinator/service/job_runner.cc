// The runner loop: plan, step, apply.
#include "coordinator/service/job_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/aggregation/answer_extractor.h"
#include "coordinator/aggregation/early_pruning.h"
#include "coordinator/service/branch_output.h"
#include "coordinator/service/runner_job.h"

namespace rami::coordinator {
namespace {

namespace v1 = rami::v1;
namespace wv1 = worker::v1;
using aggregation::FinishReason;

}  // namespace

JobRunner::JobRunner(const RunnerConfig& config, WorkerGroupClient* group,
                     const wv1::LoadShardResponse& load, const api::ModelFrontEnd* model)
    : config_(config), group_(group), model_(model), scheduler_(config.scheduler) {
  capacity_.free_pages = load.num_pages();
  capacity_.page_size = load.page_size();
  capacity_.streams = int64_t{load.num_layers()} * load.num_kv_heads();
  capacity_.evicts = load.dms_window() > 0;
  capacity_.window = load.dms_window();
  bytes_per_token_ =
      load.num_pages() > 0 ? load.kv_cache_bytes() / load.num_pages() / load.page_size() : 0;
  thread_ = std::thread([this] { Loop(); });
}

JobRunner::~JobRunner() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    work_.SignalAll();
  }
  thread_.join();
}

absl::StatusOr<std::shared_ptr<JobHandle>> JobRunner::Submit(api::ValidatedRequest request) {
  absl::MutexLock lock(&mu_);
  if (broken_) return absl::UnavailableError("the worker group failed; no capacity to serve");
  if (static_cast<int>(jobs_.size()) >= config_.queue_limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queue full: ", config_.queue_limit, " jobs waiting or running"));
  }
  auto rj = std::make_unique<RunnerJob>();
  const JobId id = next_job_++;
  rj->handle = std::make_shared<JobHandle>();
  rj->handle->id = absl::StrCat("job-", id);
  rj->request = std::move(request);
  const api::ValidatedRequest& r = rj->request;
  absl::StatusOr<aggregation::AnswerExtractor> extractor =
      aggregation::AnswerExtractor::Create(r.aggregation.extractor_regex);
  if (!extractor.ok()) return extractor.status();
  rj->extractor = std::move(*extractor);
  const api::PruningOptions& pruning = r.aggregation.pruning;
  if (pruning.enabled) {
    rj->pruner.emplace(aggregation::PruningParams{pruning.warmup_branches, pruning.window_tokens,
                                                  pruning.percentile});
  }
  // Confidence needs the top-k alternatives even when the client asked for none.
  rj->worker_logprobs = std::max(r.logprobs, pruning.confidence_top_k);
  rj->job.id = id;
  rj->job.priority = r.priority;
  rj->job.arrival = id;
  rj->job.prompt = r.prompt_token_ids;
  rj->job.max_tokens = r.stopping.max_tokens;
  for (int i = 0; i < r.n; ++i) {
    Branch b;
    b.index = i;
    b.sampling = {r.sampling.temperature,
                  r.sampling.top_k,
                  r.sampling.top_p,
                  r.sampling.min_p,
                  r.sampling.seed + static_cast<uint64_t>(i),
                  rj->worker_logprobs};
    rj->job.branches.push_back(b);
    rj->outputs.push_back(
        std::make_unique<BranchOutput>(rj->request, model_->tokenizer(), pruning.window_tokens));
  }
  rj->reasons.resize(r.n);
  rj->answers.resize(r.n);
  rj->submitted = absl::Now();
  v1::GenerateEvent accepted;
  accepted.set_job_id(rj->handle->id);
  accepted.mutable_accepted()->set_prompt_tokens(static_cast<int32_t>(r.prompt_token_ids.size()));
  accepted.mutable_accepted()->set_n(r.n);
  rj->handle->events.Push(std::move(accepted));
  std::shared_ptr<JobHandle> handle = rj->handle;
  by_name_[handle->id] = id;
  jobs_[id] = std::move(rj);
  work_.Signal();
  return handle;
}

void JobRunner::Abort(const std::string& job_id, std::optional<int> branch) {
  absl::MutexLock lock(&mu_);
  auto name = by_name_.find(job_id);
  if (name == by_name_.end()) return;
  auto it = jobs_.find(name->second);
  if (it == jobs_.end() || it->second->done) return;
  RunnerJob& job = *it->second;
  if (!branch.has_value()) {
    FailJob(job, absl::AbortedError("job aborted by the client"), /*retryable=*/false);
  } else if (*branch >= 0 && *branch < static_cast<int>(job.job.branches.size()) &&
             !job.reasons[*branch].has_value()) {
    FinishBranch(job, *branch, FinishReason::kAborted);
    if (job.job.AllBranchesFinished()) FinishJob(job);
  }
  work_.Signal();
}

std::optional<v1::GetJobResponse> JobRunner::Get(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  if (auto f = finished_.find(job_id); f != finished_.end()) return f->second;
  auto name = by_name_.find(job_id);
  if (name == by_name_.end()) return std::nullopt;
  auto it = jobs_.find(name->second);
  if (it == jobs_.end()) return std::nullopt;
  v1::GetJobResponse response;
  const Job& job = it->second->job;
  response.set_state(job.phase == JobPhase::kQueued ? v1::GetJobResponse::QUEUED
                                                    : v1::GetJobResponse::RUNNING);
  int finished = 0;
  for (const Branch& b : job.branches) finished += b.phase == BranchPhase::kFinished ? 1 : 0;
  response.set_branches_running(job.RunningBranches());
  response.set_branches_finished(finished);
  return response;
}

RunnerStats JobRunner::Stats() {
  absl::MutexLock lock(&mu_);
  RunnerStats s = stats_;
  s.jobs_active = static_cast<int>(jobs_.size());
  s.free_pages = capacity_.free_pages;
  return s;
}

bool JobRunner::healthy() {
  absl::MutexLock lock(&mu_);
  return !broken_;
}

void JobRunner::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (!stop_ && jobs_.empty()) work_.Wait(&mu_);
      if (stop_) return;
    }
    if (!StepOnce()) {
      absl::MutexLock lock(&mu_);
      work_.WaitWithTimeout(&mu_, absl::Milliseconds(5));
    }
  }
}

}  // namespace rami::coordinator
