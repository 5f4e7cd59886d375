// A worker group's thread: load the group, then step it — plan (Scheduler) → every rank →
// results → jobs — until it fails, leaves or the runner stops; a failed group's branches move
// to the other groups and the group is loaded again after a pause.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/runner/job_outcome.h"
#include "coordinator/runner/job_runner.h"

namespace rami::coordinator {

namespace wv1 = worker::v1;

void JobRunner::GroupLoop(WorkerGroup* g) {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_ || g->leaving) break;
    }
    if (!LoadGroup(*g).ok()) {
      absl::MutexLock lock(&mu_);
      work_.WaitWithTimeout(&mu_, config_.reload_backoff);
      continue;
    }
    // Serve until the group fails, leaves or the runner stops.
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;
        if (g->state != GroupState::kServing || g->leaving) break;
        bool has_work = false;
        for (const auto& [id, job] : jobs_) has_work |= job->parts.count(g->id()) > 0;
        if (!has_work && g->in_flight.empty()) {
          work_.WaitWithTimeout(&mu_, absl::Milliseconds(50));
          continue;
        }
      }
      if (!StepOnce(*g)) {
        absl::MutexLock lock(&mu_);
        work_.WaitWithTimeout(&mu_, absl::Milliseconds(5));
      }
    }
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    if (g->leaving) {
      if (g->state == GroupState::kServing) {
        Evacuate(*g, absl::UnavailableError(absl::StrCat("worker group ", g->key(), " left")));
      }
      break;
    }
    // Failed: its branches have moved; try to load it again after a pause (a restarted
    // worker comes back this way).
    work_.WaitWithTimeout(&mu_, config_.reload_backoff);
  }
  absl::MutexLock lock(&mu_);
  g->state = GroupState::kGone;
}

absl::Status JobRunner::LoadGroup(WorkerGroup& g) {
  GroupLoadOptions options = config_.load;
  // The epoch orders this coordinator's loads after every earlier one, a restarted
  // coordinator's included; the group id keeps the collectives' rendezvous keys apart.
  const int64_t epoch = absl::ToUnixMicros(absl::Now());
  options.lease_holder = config_.coordinator_id;
  options.lease_epoch = epoch;
  options.group_id = absl::StrCat(config_.coordinator_id, "-g", g.id(), "-", epoch);
  absl::StatusOr<std::vector<wv1::LoadShardResponse>> load = g.client->Load(options);
  absl::MutexLock lock(&mu_);
  absl::Status loaded = load.status();
  if (loaded.ok()) loaded = g.OnLoaded(*load, identity_, config_.scheduler, epoch);
  if (!loaded.ok()) {
    g.error = loaded;
    g.permanent_error = PermanentLoadError(loaded);
    last_load_error_ =
        absl::Status(loaded.code(), absl::StrCat("group ", g.key(), ": ", loaded.message()));
    std::fprintf(stderr, "rami-coordinator: %s\n", last_load_error_.ToString().c_str());
    return loaded;
  }
  std::fprintf(stderr,
               "rami-coordinator: group %d (%s) serves: %lld pages of %d tokens per rank, "
               "policy %s\n",
               g.id(), g.key().c_str(), static_cast<long long>(g.num_pages), g.capacity().page_size,
               g.cache_policy.c_str());
  work_.SignalAll();
  return absl::OkStatus();
}

bool JobRunner::StepOnce(WorkerGroup& g) {
  const size_t depth = config_.lookahead ? 2 : 1;
  bool sent = false;
  // 1. Plan and send the next step while the pipeline has room: with lookahead, step t+1
  // goes out before step t's results arrive (decode inputs are the workers' own tokens).
  if (g.in_flight.size() < depth) {
    std::optional<wv1::StepPlan> plan;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time start = absl::Now();
      plan = PlanStep(g);
      const double ms = absl::ToDoubleMilliseconds(absl::Now() - start);
      stats_.schedule_ms_total += ms;
      stats_.plan_ms_total += ms;
    }
    if (plan.has_value()) {
      sent = true;
      if (absl::Status s = g.client->Send(*plan); !s.ok()) {
        absl::MutexLock lock(&mu_);
        if (!stop_) Evacuate(g, s);
        return true;
      }
    }
  }
  // 2. Receive the oldest step once the pipeline is full, or when nothing new was sent.
  if (g.in_flight.empty() || (sent && g.in_flight.size() < depth)) return sent;
  absl::Time deadline;
  {
    absl::MutexLock lock(&mu_);
    deadline = g.StepDeadline(config_.step_deadlines);
  }
  absl::StatusOr<std::vector<wv1::StepResult>> results = g.client->Receive(deadline);
  const absl::Time received = absl::Now();
  absl::MutexLock lock(&mu_);
  if (stop_) return true;
  const WorkerGroup::InFlight step = g.in_flight.front();
  stats_.step_ms_total += absl::ToDoubleMilliseconds(received - step.sent);
  if (metrics_ != nullptr) metrics_->WorkerStep(absl::ToDoubleSeconds(received - step.sent));
  g.in_flight.pop_front();
  if (results.ok()) g.RecordStepTime(step, received - step.sent);
  if (!results.ok()) {
    Evacuate(g, results.status());
    return true;
  }
  ApplyResults(g, *results);
  stats_.schedule_ms_total += absl::ToDoubleMilliseconds(absl::Now() - received);
  return true;
}

std::optional<wv1::StepPlan> JobRunner::PlanStep(WorkerGroup& g) {
  const absl::Time now = absl::Now();
  std::vector<Job*> active;
  for (auto& [id, job] : jobs_) {
    auto part = job->parts.find(g.id());
    if (part == job->parts.end()) continue;
    if (!job->done && now > job->request().deadline) {
      FailJob(*job, absl::DeadlineExceededError("the job's deadline passed"), false);
    }
    active.push_back(&part->second);
  }
  SortForScheduling(active);
  const StepDecision decision =
      g.WithPlanningCapacity([&](const Capacity& cap) { return g.scheduler->Plan(active, cap); });
  if (decision.empty()) {
    if (g.in_flight.empty()) HandleIdle(g, active);
    return std::nullopt;
  }
  wv1::StepPlan plan = g.ToWorkerPlan(decision);
  Reap();  // the plan freed the sequences of jobs that ended: they leave the table now
  plan.set_step_id(++stats_.steps);
  plan.set_lease_epoch(g.lease_epoch);
  ++g.steps;
  int64_t tokens = static_cast<int64_t>(decision.decodes.size());
  for (const PlannedPrefill& p : decision.prefills) tokens += static_cast<int64_t>(p.tokens.size());
  for (const PlannedFork& f : decision.forks) tokens += static_cast<int64_t>(f.children.size());
  g.in_flight.push_back({decision.reserved_pages, absl::Now(), tokens});
  const int decodes = static_cast<int>(decision.decodes.size());
  stats_.max_branches_running = std::max(stats_.max_branches_running, decodes);
  if (decision.capacity_limited && decodes > 0) {
    stats_.decode_tokens += decodes;
    ++stats_.decode_steps;
  }
  stats_.preemptions += static_cast<int64_t>(decision.preempted.size());
  stats_.prefix += decision.prefix;
  for (const PlannedPrefill& p : decision.prefills) {
    if (p.owner.branch < 0) stats_.prefill_tokens += static_cast<int64_t>(p.tokens.size());
  }
  return plan;
}

void JobRunner::ApplyResults(WorkerGroup& g, const std::vector<wv1::StepResult>& results) {
  for (const auto& [id, kv] : g.ApplyCacheReports(results)) {
    if (auto job = jobs_.find(id); job != jobs_.end()) job->second->SetGroupKv(g.id(), kv);
  }
  // Tokens (identical on every rank) to their branches.
  for (const wv1::SampledToken& t : results[0].tokens()) {
    const BranchRef* owner = g.Owner(t.seq_id());
    if (owner == nullptr || owner->branch < 0) continue;
    auto it = jobs_.find(owner->job);
    if (it == jobs_.end() || it->second->done) continue;
    JobState& job = *it->second;
    if (job.state(owner->branch).group != g.id()) continue;  // moved while the step ran
    Branch* b = job.branch(owner->branch);
    if (b == nullptr || b->phase != BranchPhase::kRunning) continue;   // ended while it ran
    if (t.index() < static_cast<int64_t>(b->tokens.size())) continue;  // a replay's re-sample
    AcceptToken(job, *b, t);
  }
  // A sequence that failed on the workers (non-finite logits: a broken checkpoint) fails its
  // job with the workers' message; its sequences are freed by the next plan.
  for (const wv1::SequenceError& e : results[0].sequence_errors()) {
    const BranchRef* owner = g.Owner(e.seq_id());
    if (owner == nullptr) continue;
    auto it = jobs_.find(owner->job);
    if (it == jobs_.end() || it->second->done) continue;
    const absl::StatusCode code = e.error_code() != 0
                                      ? static_cast<absl::StatusCode>(e.error_code())
                                      : absl::StatusCode::kInternal;
    FailJob(*it->second,
            absl::Status(code, absl::StrCat("worker group ", g.key(), ": ", e.error_message())),
            /*retryable=*/false);
  }
  // Scored prompt tokens to their jobs (from the roots' chunks).
  for (const wv1::PromptLogprobs& scored : results[0].prompt_logprobs()) {
    const BranchRef* owner = g.Owner(scored.seq_id());
    if (owner == nullptr || owner->branch >= 0) continue;
    auto it = jobs_.find(owner->job);
    if (it != jobs_.end() && !it->second->done) it->second->RecordPromptLogprobs(scored);
  }
  // Pruning, then jobs whose branches are all done; progress for the others.
  for (auto& [id, job] : jobs_) {
    if (job->done || !job->parts.count(g.id())) continue;
    if (job->score_only()) {
      FinishScoreOnly(g, *job);
      continue;
    }
    PruneBranches(*job);
    if (job->AllBranchesFinished()) {
      FinishJob(*job);
    } else if (job->request().stream_deltas &&
               absl::Now() - job->progress_sent > absl::Milliseconds(100)) {
      SendProgress(*job);
    }
  }
}

void JobRunner::FinishScoreOnly(WorkerGroup& g, JobState& job) {
  if (job.PromptScored()) {
    FinishJob(job);
  } else if (job.RootsPrefilled() && g.in_flight.empty()) {
    // Every chunk's results are in and some positions are still missing: never wait forever.
    FailJob(job,
            absl::InternalError(absl::StrCat("worker group ", g.key(),
                                             " returned no log-probs for some prompt tokens")),
            /*retryable=*/false);
  }
}

void JobRunner::HandleIdle(WorkerGroup& g, const std::vector<Job*>& active) {
  // Nothing fits and nothing runs on the group: the youngest part that waits for pages can
  // never be served there — fail its job so the others make progress (a prompt larger than
  // the whole pool ends here).
  bool running = false;
  Job* youngest = nullptr;
  for (Job* part : active) {
    running |= part->RunningBranches() > 0;
    bool waits = part->phase == JobPhase::kQueued || part->phase == JobPhase::kPrefilling;
    for (const Branch& b : part->branches) {
      waits |= b.phase == BranchPhase::kWaiting || b.phase == BranchPhase::kPreempted;
    }
    if (waits) youngest = part;
  }
  if (!running && youngest != nullptr) {
    FailJob(*jobs_.at(youngest->id),
            absl::ResourceExhaustedError(
                absl::StrCat("the job does not fit the KV cache of worker group ", g.key(),
                             " (prompt and branches need more pages)")),
            /*retryable=*/true);
  }
  Reap();
}

void JobRunner::Evacuate(WorkerGroup& g, const absl::Status& why) {
  g.OnLost(why);
  std::fprintf(stderr, "rami-coordinator: group %d (%s): %s\n", g.id(), g.key().c_str(),
               why.ToString().c_str());
  for (auto& [id, job] : jobs_) {
    if (!job->parts.count(g.id())) continue;
    std::vector<Branch> moving = job->DropGroup(g.id());  // its sequences went with the group
    const bool root_only = job->n() == 0 && job->parts.empty();  // a score-only job's root
    if (job->done || (moving.empty() && !root_only)) continue;
    stats_.relocated_branches += static_cast<int64_t>(moving.size());
    job->relocated_branches += static_cast<int>(moving.size());
    if (++job->relocations > config_.max_relocations) {
      FailJob(*job,
              absl::UnavailableError(
                  absl::StrCat("the job's branches had to move ", job->relocations,
                               " times (worker groups failed under it); last: ", why.ToString())),
              /*retryable=*/true);
      continue;
    }
    if (!Place(*job, std::move(moving))) {
      FailJob(*job,
              absl::UnavailableError(absl::StrCat(
                  "no worker group is left to run the job's branches: ", why.ToString())),
              /*retryable=*/true);
    }
  }
  Reap();
  work_.SignalAll();
}

}  // namespace rami::coordinator
