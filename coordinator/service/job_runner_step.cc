// One runner step: plan (Scheduler) → worker plan → results → branches, events, aggregation.
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/service/job_runner.h"
#include "coordinator/service/runner_job.h"
#include "proto/worker_types.h"

namespace rami::coordinator {
namespace {

namespace v1 = rami::v1;
namespace wv1 = worker::v1;
using aggregation::FinishReason;

}  // namespace

bool JobRunner::StepOnce(Group& g) {
  const size_t depth = config_.lookahead ? 2 : 1;
  bool sent = false;
  // 1. Plan and send the next step while the pipeline has room: with lookahead, step t+1
  // goes out before step t's results arrive (decode inputs are the workers' own tokens).
  if (g.in_flight.size() < depth) {
    wv1::StepPlan plan;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time start = absl::Now();
      std::vector<Job*> active;
      for (auto& [id, rj] : jobs_) {
        auto part = rj->parts.find(g.id);
        if (part == rj->parts.end()) continue;
        if (!rj->done && start > rj->request.deadline) {
          FailJob(*rj, absl::DeadlineExceededError("the job's deadline passed"), false);
        }
        active.push_back(&part->second);
      }
      SortForScheduling(active);
      // Steps in flight have taken pages the last results do not show yet, and a step planned
      // one ahead needs the page counts announced two steps ahead.
      Capacity cap = g.capacity;
      for (const Group::InFlight& f : g.in_flight) cap.free_pages -= f.reserved_pages;
      if (!g.in_flight.empty()) cap.decode_need = g.decode_need_ahead;
      const StepDecision decision = g.scheduler->Plan(active, cap);
      if (!decision.empty()) {
        plan = ToPlan(g, decision);
        plan.set_step_id(++stats_.steps);
        ++g.steps;
        plan.set_lease_epoch(g.lease_epoch);
        g.in_flight.push_back({decision.reserved_pages, absl::Now()});
        sent = true;
      } else if (g.in_flight.empty()) {
        HandleIdle(g, active);
      }
      stats_.schedule_ms_total += absl::ToDoubleMilliseconds(absl::Now() - start);
    }
    if (sent) {
      if (absl::Status s = g.client->Send(plan); !s.ok()) {
        absl::MutexLock lock(&mu_);
        if (!stop_) Evacuate(g, s);
        return true;
      }
    }
  }
  // 2. Receive the oldest step once the pipeline is full, or when nothing new was sent.
  if (g.in_flight.empty() || (sent && g.in_flight.size() < depth)) return sent;
  absl::StatusOr<std::vector<wv1::StepResult>> results = g.client->Receive();
  const absl::Time received = absl::Now();
  absl::MutexLock lock(&mu_);
  if (stop_) return true;
  stats_.step_ms_total += absl::ToDoubleMilliseconds(received - g.in_flight.front().sent);
  g.in_flight.pop_front();
  if (!results.ok()) {
    Evacuate(g, results.status());
    return true;
  }
  Apply(g, *results);
  stats_.schedule_ms_total += absl::ToDoubleMilliseconds(absl::Now() - received);
  return true;
}

void JobRunner::HandleIdle(Group& g, const std::vector<Job*>& active) {
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
    RunnerJob& job = *jobs_.at(youngest->id);
    if (!job.done) {
      FailJob(job,
              absl::ResourceExhaustedError(
                  absl::StrCat("the job does not fit the KV cache of worker group ", g.key,
                               " (prompt and branches need more pages)")),
              /*retryable=*/true);
    }
  }
  Reap();
}

wv1::StepPlan JobRunner::ToPlan(Group& g, const StepDecision& d) {
  wv1::StepPlan plan;
  for (SeqId seq : d.frees) {
    plan.add_frees(seq);
    g.owner.erase(seq);
    g.capacity.decode_need.erase(seq);
    g.decode_need_ahead.erase(seq);
    g.capacity.unshared_pages.erase(seq);
  }
  for (const PlannedPrefill& p : d.prefills) {
    wv1::PrefillChunk* chunk = plan.add_prefills();
    chunk->set_seq_id(p.seq);
    chunk->mutable_token_ids()->Assign(p.tokens.begin(), p.tokens.end());
    chunk->set_create(p.create);
    chunk->set_sample(p.sample);
    chunk->set_generated_tokens(p.generated_tokens);
    if (p.create) {
      // The root never samples; its parameters are those of a branch of the part.
      const Job& part = jobs_.at(p.owner.job)->parts.at(g.id);
      *chunk->mutable_sampling() = proto::SamplingToProto(part.branches.at(0).sampling);
    }
    g.owner[p.seq] = p.owner;
  }
  for (const auto& [seq, ref] : d.decodes) plan.add_decodes(seq);
  for (const PlannedFork& f : d.forks) {
    wv1::Fork* fork = plan.add_forks();
    fork->set_parent(f.parent);
    RunnerJob& job = *jobs_.at(f.job);
    for (const auto& [branch, seq] : f.children) {
      wv1::ForkChild* child = fork->add_children();
      child->set_seq_id(seq);
      *child->mutable_sampling() = proto::SamplingToProto(job.FindBranch(branch)->sampling);
      g.owner[seq] = {f.job, branch};
    }
  }
  stats_.max_branches_running =
      std::max(stats_.max_branches_running, static_cast<int>(d.decodes.size()));
  if (d.capacity_limited && !d.decodes.empty()) {
    stats_.decode_tokens += static_cast<int64_t>(d.decodes.size());
    ++stats_.decode_steps;
  }
  stats_.preemptions += static_cast<int64_t>(d.preempted.size());
  return plan;
}

void JobRunner::Apply(Group& g, const std::vector<wv1::StepResult>& results) {
  Capacity& capacity = g.capacity;
  // Capacity: the tightest rank counts.
  capacity.free_pages = results[0].cache().free_pages();
  std::map<JobId, int64_t> live_sum, logical;
  for (const wv1::StepResult& r : results) {
    capacity.free_pages = std::min(capacity.free_pages, r.cache().free_pages());
  }
  // The mean α so far, the lowest over ranks (the most conservative projection).
  if (results[0].cache().eviction_rate() > 0) {
    capacity.eviction_rate = results[0].cache().eviction_rate();
    for (const wv1::StepResult& r : results) {
      capacity.eviction_rate = std::min(capacity.eviction_rate, r.cache().eviction_rate());
    }
  }
  for (size_t i = 0; i < results.size(); ++i) {
    for (const wv1::SequenceCache& s : results[i].cache().sequences()) {
      auto owner = g.owner.find(s.seq_id());
      if (owner == g.owner.end()) continue;  // freed by a plan sent since
      const int64_t need = s.decode_page_needs_size() > 0 ? s.decode_page_needs(0) : 0;
      auto [it, fresh] = capacity.decode_need.try_emplace(s.seq_id(), need);
      if (!fresh) it->second = i == 0 ? need : std::max(it->second, need);
      const int64_t ahead = s.decode_page_needs_size() > 1 ? s.decode_page_needs(1) : need;
      auto [a, afresh] = g.decode_need_ahead.try_emplace(s.seq_id(), ahead);
      if (!afresh) a->second = i == 0 ? ahead : std::max(a->second, ahead);
      auto [u, ufresh] = capacity.unshared_pages.try_emplace(s.seq_id(), s.unshared_pages());
      if (!ufresh)
        u->second = i == 0 ? s.unshared_pages() : std::min(u->second, s.unshared_pages());
      live_sum[owner->second.job] += s.live_tokens_sum();
      logical[owner->second.job] += s.logical_tokens() * capacity.streams / results.size();
    }
  }
  // KV bytes of a job: what its sequences on this group hold, plus its other groups' share
  // as last reported (each group reports only its own).
  for (const auto& [job_id, live] : live_sum) {
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) continue;
    RunnerJob& job = *it->second;
    job.kv_bytes_by_group[g.id] = live * g.bytes_per_token;
    job.live_by_group[g.id] = {live, logical[job_id]};
    int64_t bytes = 0, live_all = 0, logical_all = 0;
    for (auto b = job.kv_bytes_by_group.begin(); b != job.kv_bytes_by_group.end();) {
      if (!job.parts.count(b->first)) {  // the group is gone, and its memory with it
        job.live_by_group.erase(b->first);
        b = job.kv_bytes_by_group.erase(b);
        continue;
      }
      bytes += b->second;
      live_all += job.live_by_group[b->first].first;
      logical_all += job.live_by_group[b->first].second;
      ++b;
    }
    job.kv_bytes = bytes;
    job.peak_kv_bytes = std::max(job.peak_kv_bytes, job.kv_bytes);
    if (live_all > 0) job.compression_ratio = static_cast<double>(logical_all) / live_all;
  }
  // Tokens (identical on every rank).
  for (const wv1::SampledToken& t : results[0].tokens()) {
    auto owner = g.owner.find(t.seq_id());
    if (owner == g.owner.end() || owner->second.branch < 0) continue;
    auto it = jobs_.find(owner->second.job);
    if (it == jobs_.end() || it->second->done) continue;
    RunnerJob& job = *it->second;
    auto part = job.parts.find(g.id);
    if (part == job.parts.end()) continue;
    Branch* b = nullptr;
    for (Branch& candidate : part->second.branches) {
      if (candidate.index == owner->second.branch) b = &candidate;
    }
    if (b == nullptr || b->phase != BranchPhase::kRunning) continue;   // ended while it ran
    if (t.index() < static_cast<int64_t>(b->tokens.size())) continue;  // a replay's re-sample
    OnToken(job, *b, t);
  }
  // DeepConf pruning, then jobs whose branches are all done.
  for (auto& [id, rj] : jobs_) {
    RunnerJob& job = *rj;
    if (job.done || !job.parts.count(g.id)) continue;
    if (job.pruner.has_value() && job.pruner->has_threshold()) {
      for (int i = 0; i < job.n; ++i) {
        if (job.reasons[i].has_value()) continue;
        const BranchOutput& out = *job.outputs[i];
        if (job.pruner->ShouldPrune(out.confidence(), out.tokens())) {
          FinishBranch(job, i, FinishReason::kPruned);
        }
      }
    }
    if (job.request.aggregation.pruning.stop_when_decided && !job.AllBranchesFinished()) {
      std::vector<aggregation::BranchOutcome> outcomes;
      int remaining = 0;
      for (int i = 0; i < job.n; ++i) {
        if (!job.reasons[i].has_value()) {
          ++remaining;
          continue;
        }
        outcomes.push_back({i, *job.reasons[i], job.answers[i], job.outputs[i]->confidence(),
                            job.outputs[i]->mean_logprob()});
      }
      const aggregation::AggregationPolicy policy = ToAggregation(job.request.aggregation.policy);
      const aggregation::AggregationResult partial = aggregation::Aggregate(policy, outcomes);
      if (aggregation::VoteDecided(policy, partial.votes, remaining)) {
        for (int i = 0; i < job.n; ++i) {
          if (!job.reasons[i].has_value()) FinishBranch(job, i, FinishReason::kPruned);
        }
      }
    }
    if (job.AllBranchesFinished()) {
      FinishJob(job);
    } else if (job.request.stream_deltas &&
               absl::Now() - job.progress_sent > absl::Milliseconds(100)) {
      SendProgress(job);
    }
  }
}

void JobRunner::SendProgress(RunnerJob& job) {
  job.progress_sent = absl::Now();
  v1::GenerateEvent event;
  event.set_job_id(job.handle->id);
  v1::Progress* p = event.mutable_progress();
  p->set_branches_running(job.RunningBranches());
  p->set_branches_finished(job.FinishedBranches());
  p->set_kv_bytes(job.kv_bytes);
  p->set_compression_ratio(job.compression_ratio);
  job.handle->events.Push(std::move(event));
}

void JobRunner::OnToken(RunnerJob& job, Branch& b, const wv1::SampledToken& token) {
  const int branch = b.index;
  b.tokens.push_back(token.token_id());
  if (!job.first_token.has_value()) job.first_token = absl::Now();
  v1::GenerateEvent event;
  event.set_job_id(job.handle->id);
  v1::Delta* delta = event.mutable_delta();
  delta->set_branch(branch);
  const std::optional<FinishReason> reason =
      job.outputs[branch]->Add(token, job.request.aggregation.pruning.confidence_top_k, delta);
  if (job.request.stream_deltas) job.handle->events.Push(std::move(event));
  if (reason.has_value()) FinishBranch(job, branch, *reason);
}

void JobRunner::FinishBranch(RunnerJob& job, int branch, FinishReason reason) {
  if (job.reasons[branch].has_value()) return;
  if (Branch* b = job.FindBranch(branch); b != nullptr) {
    if (b->seq >= 0) b->free_pending = true;  // freed at the start of the next step
    b->phase = BranchPhase::kFinished;
    b->replay_pending = false;
  }
  job.reasons[branch] = reason;
  const BranchOutput& out = *job.outputs[branch];
  job.answers[branch] = job.extractor->Extract(out.text());
  if (job.pruner.has_value()) job.pruner->OnBranchFinished(reason, out.confidence());
  v1::GenerateEvent event;
  event.set_job_id(job.handle->id);
  v1::BranchFinished* f = event.mutable_branch_finished();
  f->set_branch(branch);
  f->set_reason(ToProto(reason));
  f->set_answer(job.answers[branch]);
  f->set_confidence(out.confidence());
  f->set_tokens(static_cast<int32_t>(out.tokens()));
  f->set_text(out.text());
  job.handle->events.Push(std::move(event));
}

void JobRunner::FinishJob(RunnerJob& job) {
  if (job.done) return;
  job.done = true;
  for (auto& [group, part] : job.parts) {
    if (part.root >= 0) part.root_free_pending = true;
    part.phase = JobPhase::kFinished;
  }
  std::vector<aggregation::BranchOutcome> outcomes;
  for (int i = 0; i < job.n; ++i) {
    outcomes.push_back({i, job.reasons[i].value_or(FinishReason::kAborted), job.answers[i],
                        job.outputs[i]->confidence(), job.outputs[i]->mean_logprob()});
  }
  const aggregation::AggregationResult agg =
      aggregation::Aggregate(ToAggregation(job.request.aggregation.policy), outcomes);
  v1::GenerateEvent event;
  event.set_job_id(job.handle->id);
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
    v1::BranchSummary* s = result->add_branches();
    s->set_branch(o.branch);
    s->set_reason(ToProto(o.reason));
    s->set_answer(o.answer);
    s->set_confidence(o.confidence);
    s->set_mean_logprob(o.mean_logprob);
    s->set_tokens(static_cast<int32_t>(job.outputs[o.branch]->tokens()));
    generated += job.outputs[o.branch]->tokens();
  }
  const absl::Duration elapsed = absl::Now() - job.submitted;
  v1::Usage* usage = result->mutable_usage();
  usage->set_prompt_tokens(static_cast<int64_t>(job.job.prompt.size()));
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
  v1::GetJobResponse record;
  record.set_state(v1::GetJobResponse::FINISHED);
  record.set_branches_finished(static_cast<int32_t>(outcomes.size()));
  *record.mutable_result() = *result;
  finished_[job.handle->id] = record;
  job.handle->events.Push(std::move(event));
}

void JobRunner::FailJob(RunnerJob& job, const absl::Status& status, bool retryable) {
  if (job.done) return;
  for (auto& [group, part] : job.parts) {
    for (Branch& b : part.branches) {
      if (b.phase == BranchPhase::kFinished) continue;
      if (b.seq >= 0) b.free_pending = true;
      b.phase = BranchPhase::kFinished;
    }
    if (part.root >= 0) part.root_free_pending = true;
    part.phase = JobPhase::kFinished;
  }
  job.done = true;
  v1::GetJobResponse record;
  record.set_state(status.code() == absl::StatusCode::kAborted ? v1::GetJobResponse::ABORTED
                                                               : v1::GetJobResponse::FAILED);
  finished_[job.handle->id] = record;
  v1::GenerateEvent event;
  event.set_job_id(job.handle->id);
  event.mutable_error()->set_code(static_cast<int32_t>(status.code()));
  event.mutable_error()->set_message(std::string(status.message()));
  event.mutable_error()->set_retryable(retryable);
  job.handle->events.Push(std::move(event));
}

}  // namespace rami::coordinator
