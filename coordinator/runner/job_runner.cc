// JobRunner's public side: submission and placement, abort, queries, statistics; and the
// start and stop of its threads. The group threads' loop is in group_loop.cc, the
// maintenance thread in maintenance.cc.
#include "coordinator/runner/job_runner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/quote.h"
#include "base/status_macros.h"
#include "coordinator/runner/job_id.h"
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

namespace {

// Branches a job holds toward its owner's max_branches: its unfinished ones (a score-only job:
// 1, its root).
int HeldBranches(const JobState& job) {
  return job.n() == 0 ? 1 : job.n() - job.FinishedBranches();
}

}  // namespace

absl::StatusOr<std::shared_ptr<JobHandle>> JobRunner::Submit(api::ValidatedRequest request,
                                                             const JobOwner& owner) {
  std::vector<api::ValidatedRequest> one;
  one.push_back(std::move(request));
  RAMI_ASSIGN_OR_RETURN(std::vector<std::shared_ptr<JobHandle>> handles,
                        Submit(std::move(one), owner));
  return handles.at(0);
}

absl::StatusOr<std::vector<std::shared_ptr<JobHandle>>> JobRunner::Submit(
    std::vector<api::ValidatedRequest> requests, const JobOwner& owner) {
  absl::MutexLock lock(&mu_);
  if (draining_) {
    return absl::UnavailableError("the coordinator is shutting down; submit to another one");
  }
  // Finished jobs waiting to be reaped count for nobody.
  int active = 0, owner_jobs = 0, owner_branches = 0;
  for (const auto& [id, job] : jobs_) {
    if (job->done) continue;
    ++active;
    if (job->handle->owner != owner.name) continue;
    ++owner_jobs;
    owner_branches += HeldBranches(*job);
  }
  int new_branches = 0;
  for (const api::ValidatedRequest& r : requests) new_branches += std::max(r.n, 1);
  const int new_jobs = static_cast<int>(requests.size());
  if (active + new_jobs > config_.queue_limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("queue full: ", config_.queue_limit, " jobs waiting or running"));
  }
  if (owner.max_jobs > 0 && owner_jobs + new_jobs > owner.max_jobs) {
    return absl::ResourceExhaustedError(
        absl::StrCat("api key \"", owner.name, "\": max_jobs ", owner.max_jobs, " reached (",
                     owner_jobs, " queued or running, ", new_jobs, " more asked)"));
  }
  if (owner.max_branches > 0 && owner_branches + new_branches > owner.max_branches) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "api key \"", owner.name, "\": max_branches ", owner.max_branches, " reached (",
        owner_branches, " running or queued, ", new_branches, " more asked)"));
  }
  // Every job is made before any is placed: one that cannot be made leaves nothing behind.
  std::vector<std::unique_ptr<JobState>> made;
  for (size_t i = 0; i < requests.size(); ++i) {
    RAMI_ASSIGN_OR_RETURN(std::unique_ptr<JobState> job,
                          JobState::Create(next_job_ + static_cast<JobId>(i),
                                           std::move(requests[i]), model_->tokenizer()));
    made.push_back(std::move(job));
  }
  std::vector<std::shared_ptr<JobHandle>> handles;
  for (std::unique_ptr<JobState>& job : made) {
    JobState& j = *job;
    j.metrics = metrics_;
    j.handle = std::make_shared<JobHandle>();
    j.handle->id = NewPublicJobId();
    j.handle->owner = owner.name;
    j.SetOwner(owner.name);
    // Place fails only when no group serves, the same for every job of the batch: so it fails
    // for the first one or for none.
    if (!Place(j, j.TakeUnplaced())) {
      return absl::UnavailableError(
          absl::StrCat("no worker group is serving (", groups_.size(), " known",
                       last_load_error_.ok() ? "" : "; last error: ",
                       last_load_error_.ok() ? "" : last_load_error_.ToString(), ")"));
    }
    const JobId id = next_job_++;
    j.submitted = absl::Now();
    if (metrics_ != nullptr) metrics_->PromptTokens(static_cast<int64_t>(j.facts().prompt.size()));
    v1::GenerateEvent accepted;
    accepted.set_job_id(j.handle->id);
    accepted.mutable_accepted()->set_prompt_tokens(
        static_cast<int32_t>(j.request().prompt_token_ids.size()));
    accepted.mutable_accepted()->set_n(j.n());
    j.handle->events.Push(std::move(accepted));
    handles.push_back(j.handle);
    by_name_[j.handle->id] = id;
    jobs_[id] = std::move(job);
  }
  work_.SignalAll();
  return handles;
}

bool JobRunner::Place(JobState& job, std::vector<Branch> branches) {
  std::vector<PlacementGroup> serving;
  for (auto& [id, g] : groups_) {
    if (g->state != GroupState::kServing || g->leaving) continue;
    serving.push_back(
        {id, &g->capacity(), Headroom(id, g->capacity(), jobs_), &g->scheduler->prefix_cache()});
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

absl::Status JobRunner::Abort(const std::string& job_id, std::optional<int> branch,
                              const std::string& owner) {
  const absl::Status unknown =
      absl::NotFoundError(absl::StrCat("job_id: unknown job \"", Quote(job_id), "\""));
  absl::MutexLock lock(&mu_);
  if (auto f = finished_.find(job_id); f != finished_.end()) {
    return f->second.owner == owner ? absl::OkStatus() : unknown;  // done already
  }
  auto name = by_name_.find(job_id);
  if (name == by_name_.end()) return unknown;
  auto it = jobs_.find(name->second);
  if (it == jobs_.end() || it->second->handle->owner != owner) return unknown;
  JobState& job = *it->second;
  if (job.done) return absl::OkStatus();
  if (!branch.has_value()) {
    FailJob(job, absl::AbortedError("job aborted by the client"), /*retryable=*/false);
  } else if (*branch >= 0 && *branch < job.n() && !job.state(*branch).finished()) {
    FinishBranch(job, *branch, aggregation::FinishReason::kAborted);
    if (job.AllBranchesFinished()) FinishJob(job);
  }
  work_.SignalAll();
  return absl::OkStatus();
}

std::optional<v1::GetJobResponse> JobRunner::Get(const std::string& job_id,
                                                 const std::string& owner) {
  absl::MutexLock lock(&mu_);
  Reap();  // expired records answer NOT_FOUND
  if (auto f = finished_.find(job_id); f != finished_.end()) {
    if (f->second.owner != owner) return std::nullopt;
    return f->second.record;
  }
  auto name = by_name_.find(job_id);
  if (name == by_name_.end()) return std::nullopt;
  auto it = jobs_.find(name->second);
  if (it == jobs_.end() || it->second->handle->owner != owner) return std::nullopt;
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
    finished_[job.handle->id] = {job.handle->owner, std::move(job.record)};
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
  s.prefix_cache_enabled = config_.scheduler.prefix_cache;
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
    s.groups.back().page_size = g->capacity().page_size;
    s.groups.back().streams = g->capacity().streams;
    s.groups.back().eviction_rate = g->capacity().eviction_rate;
    s.groups.back().dms_window = g->capacity().evicts ? g->capacity().window : 0;
    if (g->scheduler != nullptr && g->state == GroupState::kServing) {
      const PrefixCache& cache = g->scheduler->prefix_cache();
      s.groups.back().prefix_entries = static_cast<int64_t>(cache.size());
      s.groups.back().prefix_tokens = cache.cached_tokens();
      s.groups.back().prefix_pages = cache.pages();
    }
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
  s.prefix_hits = stats_.prefix.hits;
  s.prefix_misses = stats_.prefix.misses;
  s.prefix_cached_tokens = stats_.prefix.cached_tokens;
  s.prefix_evictions = stats_.prefix.evictions;
  for (const auto& [id, g] : groups_) {
    s.groups.push_back({.group = g->key(),
                        .state = g->state_name(),
                        .pages_total = g->num_pages,
                        .pages_free = g->capacity().free_pages,
                        .eviction_rate = g->capacity().eviction_rate});
    if (g->scheduler != nullptr && g->state == GroupState::kServing) {
      s.groups.back().prefix_entries = static_cast<int64_t>(g->scheduler->prefix_cache().size());
      s.groups.back().prefix_tokens = g->scheduler->prefix_cache().cached_tokens();
    }
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
