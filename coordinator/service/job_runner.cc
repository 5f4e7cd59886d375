// The runner's jobs: submission and placement on groups, abort, queries. The groups' life
// cycle is in job_runner_groups.cc, the step in job_runner_step.cc.
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
using aggregation::FinishReason;

}  // namespace

JobRunner::JobRunner(const RunnerConfig& config, std::unique_ptr<WorkerDiscovery> discovery,
                     const api::ModelFrontEnd* model)
    : config_(config), discovery_(std::move(discovery)), model_(model) {
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
  rj->n = r.n;
  std::vector<Branch> branches;
  for (int i = 0; i < r.n; ++i) {
    Branch b;
    b.index = i;
    b.sampling = r.sampling;
    b.sampling.seed = r.sampling.seed + static_cast<uint64_t>(i);  // wrapping
    b.sampling.logprobs = rj->worker_logprobs;
    branches.push_back(b);
    rj->outputs.push_back(
        std::make_unique<BranchOutput>(rj->request, model_->tokenizer(), pruning.window_tokens));
  }
  rj->reasons.resize(r.n);
  rj->answers.resize(r.n);
  if (!Place(*rj, std::move(branches))) {
    return absl::UnavailableError(
        absl::StrCat("no worker group is serving (", groups_.size(), " known",
                     last_load_error_.ok() ? "" : "; last error: ",
                     last_load_error_.ok() ? "" : last_load_error_.ToString(), ")"));
  }
  rj->submitted = absl::Now();
  v1::GenerateEvent accepted;
  accepted.set_job_id(rj->handle->id);
  accepted.mutable_accepted()->set_prompt_tokens(static_cast<int32_t>(r.prompt_token_ids.size()));
  accepted.mutable_accepted()->set_n(r.n);
  rj->handle->events.Push(std::move(accepted));
  std::shared_ptr<JobHandle> handle = rj->handle;
  by_name_[handle->id] = id;
  jobs_[id] = std::move(rj);
  work_.SignalAll();
  return handle;
}

int64_t JobRunner::Headroom(const Group& g) {
  int64_t promised = 0;
  for (const auto& [id, rj] : jobs_) {
    auto part = rj->parts.find(g.id);
    if (part == rj->parts.end()) continue;
    const Job& p = part->second;
    const int64_t projected =
        p.max_tokens > 0 ? g.capacity.ProjectedBranchPages(p.max_tokens) : g.capacity.ForkBound();
    for (const Branch& b : p.branches) {
      if (b.phase == BranchPhase::kWaiting || b.phase == BranchPhase::kPreempted) {
        promised += projected;
      }
    }
    if (!p.root_ready) {
      promised += g.capacity.ChunkBound(static_cast<int64_t>(p.prompt.size() - p.prefilled));
    }
  }
  return g.capacity.free_pages - promised;
}

bool JobRunner::Place(RunnerJob& job, std::vector<Branch> branches) {
  std::vector<Group*> serving;
  std::map<int, int64_t> headroom;
  for (auto& [id, g] : groups_) {
    if (g->state != GroupState::kServing || g->leaving) continue;
    serving.push_back(g.get());
    headroom[id] = Headroom(*g);
  }
  if (serving.empty()) return false;
  // Greedy: each branch goes where the most pages remain once it (and, on a group the job
  // is not on yet, a copy of its prompt) is counted. Equal groups split a job evenly; a
  // small job stays on one group when the others have less room than its prompt costs.
  for (Branch& b : branches) {
    Group* best = nullptr;
    int64_t best_room = 0;
    for (Group* g : serving) {
      int64_t room = headroom[g->id];
      if (!job.parts.count(g->id)) {
        room -= g->capacity.ChunkBound(static_cast<int64_t>(job.job.prompt.size()));
      }
      if (best == nullptr || room > best_room) {
        best = g;
        best_room = room;
      }
    }
    auto [part, fresh] = job.parts.try_emplace(best->id, job.job);
    job.groups_used.insert(best->id);
    ++best->branches_placed;
    if (fresh) headroom[best->id] -= best->capacity.ChunkBound(job.job.prompt.size());
    headroom[best->id] -= job.job.max_tokens > 0
                              ? best->capacity.ProjectedBranchPages(job.job.max_tokens)
                              : best->capacity.ForkBound();
    b.seq = -1;
    b.free_pending = false;
    b.replay_pending = false;
    if (b.phase != BranchPhase::kFinished) {
      b.phase = b.tokens.empty() ? BranchPhase::kWaiting : BranchPhase::kPreempted;
    }
    part->second.branches.push_back(std::move(b));
  }
  return true;
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
  } else if (*branch >= 0 && *branch < job.n && !job.reasons[*branch].has_value()) {
    FinishBranch(job, *branch, FinishReason::kAborted);
    if (job.AllBranchesFinished()) FinishJob(job);
  }
  work_.SignalAll();
}

std::optional<v1::GetJobResponse> JobRunner::Get(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  if (auto f = finished_.find(job_id); f != finished_.end()) return f->second;
  auto name = by_name_.find(job_id);
  if (name == by_name_.end()) return std::nullopt;
  auto it = jobs_.find(name->second);
  if (it == jobs_.end()) return std::nullopt;
  const RunnerJob& job = *it->second;
  bool started = false;
  for (const auto& [group, part] : job.parts) started |= part.phase != JobPhase::kQueued;
  v1::GetJobResponse response;
  response.set_state(started ? v1::GetJobResponse::RUNNING : v1::GetJobResponse::QUEUED);
  response.set_branches_running(job.RunningBranches());
  response.set_branches_finished(job.FinishedBranches());
  return response;
}

RunnerStats JobRunner::Stats() {
  absl::MutexLock lock(&mu_);
  RunnerStats s = stats_;
  s.jobs_active = static_cast<int>(jobs_.size());
  s.free_pages = 0;
  s.branches_running = 0;
  for (const auto& [id, rj] : jobs_) s.branches_running += rj->RunningBranches();
  for (const auto& [id, g] : groups_) {
    GroupStats gs;
    gs.ranks = g->key;
    gs.state = g->leaving                         ? "leaving"
               : g->state == GroupState::kLoading ? "loading"
               : g->state == GroupState::kServing ? "serving"
               : g->state == GroupState::kFailed  ? "failed"
                                                  : "gone";
    gs.error = g->error.ok() ? "" : g->error.ToString();
    gs.num_pages = g->num_pages;
    gs.free_pages = g->capacity.free_pages;
    gs.branches_placed = g->branches_placed;
    gs.steps = g->steps;
    s.groups.push_back(std::move(gs));
    ++s.groups_known;
    if (g->state != GroupState::kServing) continue;
    ++s.groups_serving;
    s.free_pages += g->capacity.free_pages;
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
  return cache_policy_;
}

}  // namespace rami::coordinator
