// JobRunner's public side: submission and placement, abort, queries, statistics; and the
// start and stop of its threads. The group threads' loop is in group_loop.cc, the
// maintenance thread in maintenance.cc.
#include "coordinator/runner/job_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/runner/job_outcome.h"
#include "coordinator/runner/placement.h"

namespace rami::coordinator {

namespace v1 = rami::v1;

JobRunner::JobRunner(const RunnerConfig& config, std::unique_ptr<WorkerDiscovery> discovery,
                     const api::ModelFrontEnd* model, metrics::Metrics* metrics)
    : config_(config),
      discovery_(std::move(discovery)),
      model_(model),
      metrics_(metrics),
      identity_{model->vocab_size(), model->config_eos_token_ids()} {
  Refresh();
  maintenance_ = std::thread([this] { Maintain(); });
}

JobRunner::~JobRunner() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    for (auto& [id, g] : groups_) g->client->Cancel(/*forever=*/true);
    work_.SignalAll();
  }
  maintenance_.join();
  // Groups are only added by the maintenance thread, now ended.
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, g] : groups_) threads.push_back(std::move(g->thread));
  }
  for (std::thread& t : threads) {
    if (t.joinable()) t.join();
  }
}

absl::Status JobRunner::WaitUntilServing(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (true) {
    bool all_permanent = !groups_.empty() && discovery_->fixed();
    for (const auto& [id, g] : groups_) {
      if (g->state == GroupState::kServing) return absl::OkStatus();
      all_permanent &= g->permanent_error;
    }
    if (all_permanent) return last_load_error_;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no worker group serves yet",
          last_load_error_.ok() ? std::string()
                                : absl::StrCat("; last error: ", last_load_error_.ToString())));
    }
    work_.WaitWithDeadline(&mu_, std::min(deadline, absl::Now() + absl::Milliseconds(100)));
  }
}

void JobRunner::StartDrain() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

absl::StatusOr<std::shared_ptr<JobHandle>> JobRunner::Submit(api::ValidatedRequest request) {
  absl::MutexLock lock(&mu_);
  if (draining_) {
    return absl::UnavailableError("the coordinator is shutting down; submit to another one");
  }
  int active = 0;  // finished jobs waiting to be reaped do not count
  for (const auto& [id, job] : jobs_) active += job->done ? 0 : 1;
  if (active >= config_.queue_limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queue full: ", config_.queue_limit, " jobs waiting or running"));
  }
  const JobId id = next_job_;
  absl::StatusOr<std::unique_ptr<JobState>> job =
      JobState::Create(id, std::move(request), model_->tokenizer());
  if (!job.ok()) return job.status();
  JobState& j = **job;
  j.metrics = metrics_;
  j.handle = std::make_shared<JobHandle>();
  j.handle->id = absl::StrCat("job-", id);
  if (!Place(j, j.TakeUnplaced())) {
    return absl::UnavailableError(
        absl::StrCat("no worker group is serving (", groups_.size(), " known",
                     last_load_error_.ok() ? "" : "; last error: ",
                     last_load_error_.ok() ? "" : last_load_error_.ToString(), ")"));
  }
  ++next_job_;
  j.submitted = absl::Now();
  if (metrics_ != nullptr) metrics_->PromptTokens(static_cast<int64_t>(j.facts().prompt.size()));
  v1::GenerateEvent accepted;
  accepted.set_job_id(j.handle->id);
  accepted.mutable_accepted()->set_prompt_tokens(
      static_cast<int32_t>(j.request().prompt_token_ids.size()));
  accepted.mutable_accepted()->set_n(j.n());
  j.handle->events.Push(std::move(accepted));
  std::shared_ptr<JobHandle> handle = j.handle;
  by_name_[handle->id] = id;
  jobs_[id] = *std::move(job);
  work_.SignalAll();
  return handle;
}

bool JobRunner::Place(JobState& job, std::vector<Branch> branches) {
  std::vector<PlacementGroup> serving;
  for (auto& [id, g] : groups_) {
    if (g->state != GroupState::kServing || g->leaving) continue;
    serving.push_back({id, &g->capacity(), Headroom(id, g->capacity(), jobs_)});
  }
  if (serving.empty()) return false;
  if (job.n() == 0) {  // score-only: the root alone
    if (job.parts.empty()) PlaceRoot(job, serving);
    return true;
  }
  for (int group : PlaceBranches(job, std::move(branches), serving)) {
    ++groups_.at(group)->branches_placed;
  }
  return true;
}

void JobRunner::Abort(const std::string& job_id, std::optional<int> branch) {
  absl::MutexLock lock(&mu_);
  auto name = by_name_.find(job_id);
  if (name == by_name_.end()) return;
  auto it = jobs_.find(name->second);
  if (it == jobs_.end() || it->second->done) return;
  JobState& job = *it->second;
  if (!branch.has_value()) {
    FailJob(job, absl::AbortedError("job aborted by the client"), /*retryable=*/false);
  } else if (*branch >= 0 && *branch < job.n() && !job.state(*branch).finished()) {
    FinishBranch(job, *branch, aggregation::FinishReason::kAborted);
    if (job.AllBranchesFinished()) FinishJob(job);
  }
  work_.SignalAll();
}

std::optional<v1::GetJobResponse> JobRunner::Get(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Reap();  // expired records answer NOT_FOUND
  if (auto f = finished_.find(job_id); f != finished_.end()) return f->second;
  auto name = by_name_.find(job_id);
  if (name == by_name_.end()) return std::nullopt;
  auto it = jobs_.find(name->second);
  if (it == jobs_.end()) return std::nullopt;
  const JobState& job = *it->second;
  if (job.done) return job.record;
  v1::GetJobResponse response;
  response.set_state(job.Started() ? v1::GetJobResponse::RUNNING : v1::GetJobResponse::QUEUED);
  response.set_branches_running(job.RunningBranches());
  response.set_branches_finished(job.FinishedBranches());
  return response;
}

void JobRunner::Reap() {
  const absl::Time now = absl::Now();
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    JobState& job = *it->second;
    if (!job.done || job.HoldsSequences()) {
      ++it;
      continue;
    }
    finished_[job.handle->id] = std::move(job.record);
    finished_expiry_.emplace_back(now + config_.finished_job_ttl, job.handle->id);
    by_name_.erase(job.handle->id);
    it = jobs_.erase(it);
  }
  while (!finished_expiry_.empty() && finished_expiry_.front().first <= now) {
    finished_.erase(finished_expiry_.front().second);
    finished_expiry_.pop_front();
  }
}

RunnerStats JobRunner::Stats() {
  absl::MutexLock lock(&mu_);
  RunnerStats s = stats_;
  s.jobs_active = static_cast<int>(jobs_.size());
  for (const auto& [id, job] : jobs_) s.branches_running += job->RunningBranches();
  for (const auto& [id, g] : groups_) {
    s.groups.push_back({.ranks = g->key(),
                        .state = g->state_name(),
                        .error = g->error.ok() ? "" : g->error.ToString(),
                        .num_pages = g->num_pages,
                        .free_pages = g->capacity().free_pages,
                        .branches_placed = g->branches_placed,
                        .steps = g->steps});
    ++s.groups_known;
    if (g->state != GroupState::kServing) continue;
    ++s.groups_serving;
    s.free_pages += g->capacity().free_pages;
  }
  return s;
}

metrics::Snapshot JobRunner::MetricsSnapshot() {
  absl::MutexLock lock(&mu_);
  metrics::Snapshot s;
  for (const auto& [id, job] : jobs_) {
    if (job->done) continue;
    (job->Started() ? s.jobs_running : s.jobs_queued) += 1;
    s.branches_running += job->RunningBranches();
  }
  s.steps = stats_.steps;
  s.preemptions = stats_.preemptions;
  s.relocated_branches = stats_.relocated_branches;
  for (const auto& [id, g] : groups_) {
    s.groups.push_back({.group = g->key(),
                        .state = g->state_name(),
                        .pages_total = g->num_pages,
                        .pages_free = g->capacity().free_pages,
                        .eviction_rate = g->capacity().eviction_rate});
  }
  return s;
}

bool JobRunner::healthy() {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, g] : groups_) {
    if (g->state == GroupState::kServing) return true;
  }
  return false;
}

std::string JobRunner::cache_policy() {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, g] : groups_) {
    if (!g->cache_policy.empty()) return g->cache_policy;
  }
  return "";
}

}  // namespace rami::coordinator
