// One scheduling step: frees, decodes (with preemption), replays, prefill chunks, forks.
#include "coordinator/scheduler/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rami::coordinator {

int Job::RunningBranches() const {
  int running = 0;
  for (const Branch& b : branches) running += b.phase == BranchPhase::kRunning ? 1 : 0;
  return running;
}

bool Job::AllBranchesFinished() const {
  for (const Branch& b : branches) {
    if (b.phase != BranchPhase::kFinished) return false;
  }
  return true;
}

int64_t Capacity::DecodeBound(SeqId seq) const {
  auto it = decode_need.find(seq);
  return it != decode_need.end() ? it->second : 2 * streams;
}

int64_t Capacity::ChunkBound(int64_t tokens) const {
  return 2 * streams * ((tokens + page_size - 1) / page_size + 1);
}

int64_t Capacity::ProjectedBranchPages(int64_t tokens) const {
  double live = static_cast<double>(tokens);
  if (evicts && tokens > window + 1) {
    live = window + 1 + (1.0 - eviction_rate) * (tokens - window - 1);
  }
  return streams * (static_cast<int64_t>(live + page_size - 1) / page_size + 2);
}

absl::Status SchedulerConfig::Validate() const {
  if (max_step_sequences < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheduler: max_step_sequences must be >= 1, found ", max_step_sequences));
  }
  if (max_step_tokens < 1 || max_prefill_chunk < 1 || max_running_branches < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scheduler: max_step_tokens, max_prefill_chunk and max_running_branches must be >= 1"));
  }
  return absl::OkStatus();
}

void SortForScheduling(std::vector<Job*>& jobs) {
  std::stable_sort(jobs.begin(), jobs.end(), [](const Job* a, const Job* b) {
    if (a->priority != b->priority) return a->priority > b->priority;
    return a->arrival < b->arrival;
  });
}

StepDecision Scheduler::Plan(const std::vector<Job*>& jobs, const Capacity& cap) {
  StepDecision d;
  int64_t budget = cap.free_pages;
  int64_t tokens_left = config_.max_step_tokens;
  // Each decode and prefill chunk takes one (and at least one token).
  int64_t sequences_left = std::min(config_.max_step_sequences, config_.max_step_tokens);
  auto free_seq = [&](SeqId seq) {
    d.frees.push_back(seq);
    auto it = cap.unshared_pages.find(seq);
    if (it != cap.unshared_pages.end()) budget += it->second;  // else: unknown, count none
  };

  // 1. Frees of finished branches and finished jobs' roots: their pages serve this step.
  for (Job* job : jobs) {
    for (Branch& b : job->branches) {
      if (!b.free_pending) continue;
      free_seq(b.seq);
      b.seq = -1;
      b.free_pending = false;
    }
    if (job->root_free_pending) {
      free_seq(job->root);
      job->root = -1;
      job->root_free_pending = false;
    }
  }

  // 2. Decodes, oldest job first; when pages run short, the youngest running branches yield.
  std::vector<std::pair<Job*, Branch*>> running;
  for (Job* job : jobs) {
    for (Branch& b : job->branches) {
      if (b.phase == BranchPhase::kRunning && !b.replay_pending) running.push_back({job, &b});
    }
  }
  auto preempt = [&](Job* job, Branch* b) {
    free_seq(b->seq);
    b->seq = -1;
    b->phase = BranchPhase::kPreempted;
    d.preempted.push_back({job->id, b->index});
  };
  size_t end = running.size();  // running[i, end) are not scheduled yet
  for (size_t i = 0; i < end; ++i) {
    auto [job, b] = running[i];
    const int64_t need = cap.DecodeBound(b->seq);
    while (need > budget && end > i + 1) {
      --end;
      preempt(running[end].first, running[end].second);
    }
    if (need > budget) {
      preempt(job, b);
      continue;
    }
    // The rest waits for the next step, keeping its pages.
    if (tokens_left < 1 || sequences_left < 1) break;
    d.decodes.push_back({b->seq, {job->id, b->index}});
    budget -= need;
    --tokens_left;
    --sequences_left;
  }

  // 3. Replays of re-forked branches: their own tokens, resuming the random stream.
  for (Job* job : jobs) {
    for (Branch& b : job->branches) {
      if (!b.replay_pending) continue;
      const int64_t n = static_cast<int64_t>(b.tokens.size());
      const int64_t bound = cap.ChunkBound(n);
      if (n > tokens_left || sequences_left < 1 || bound > budget) continue;
      d.prefills.push_back({b.seq, {job->id, b.index}, b.tokens, false, true, n});
      b.replay_pending = false;
      budget -= bound;
      tokens_left -= n;
      --sequences_left;
    }
  }

  // Under memory pressure (a branch had to yield) nothing new starts this step: admitting
  // work now would only be preempted again (thrashing).
  const bool pressure = !d.preempted.empty();
  d.capacity_limited = pressure;

  // 4. Prefill chunks in priority / FCFS order; a job that does not fit stops admission, so
  // later jobs never overtake it (no starvation).
  int total_running = 0;
  for (Job* job : jobs) total_running += job->RunningBranches();
  for (Job* job : jobs) {
    if (pressure) break;
    if (job->phase != JobPhase::kQueued && job->phase != JobPhase::kPrefilling) continue;
    const int64_t remaining = static_cast<int64_t>(job->prompt.size() - job->prefilled);
    const int64_t chunk = std::min<int64_t>({remaining, config_.max_prefill_chunk, tokens_left});
    if (chunk < 1 || sequences_left < 1) break;
    const bool last = chunk == remaining;
    const int64_t bound = cap.ChunkBound(chunk) + (last ? cap.ForkBound() : 0);
    if (bound > budget) {
      d.capacity_limited = true;
      break;
    }
    PlannedPrefill p;
    if (job->phase == JobPhase::kQueued) {
      job->root = NewSeq();
      job->phase = JobPhase::kPrefilling;
      p.create = true;
    }
    p.seq = job->root;
    p.owner = {job->id, -1};
    p.tokens.assign(job->prompt.begin() + job->prefilled,
                    job->prompt.begin() + job->prefilled + chunk);
    d.prefills.push_back(std::move(p));
    job->prefilled += chunk;
    budget -= cap.ChunkBound(chunk);
    tokens_left -= chunk;
    --sequences_left;
    if (last) {
      job->root_ready = true;
      job->phase = JobPhase::kRunning;
    }
  }

  // 5. Forks from ready roots: waiting and preempted branches, as pages and the batch allow.
  // A branch starts only if the pages it is expected to need by its last token fit next to
  // what the running branches are still expected to grow (their projection minus what they
  // hold): starting branches that would later be preempted is wasted work (thrashing).
  int64_t committed = 0;
  for (Job* job : jobs) {
    for (const Branch& b : job->branches) {
      if (b.phase != BranchPhase::kRunning || job->max_tokens <= 0) continue;
      auto held = cap.unshared_pages.find(b.seq);
      committed += std::max<int64_t>(0, cap.ProjectedBranchPages(job->max_tokens) -
                                            (held != cap.unshared_pages.end() ? held->second : 0));
    }
  }
  for (Job* job : jobs) {
    if (pressure) break;
    if (!job->root_ready || job->root < 0) continue;
    PlannedFork fork{job->root, job->id, {}};
    const int64_t projected = job->max_tokens > 0 ? cap.ProjectedBranchPages(job->max_tokens) : 0;
    for (Branch& b : job->branches) {
      if (b.phase != BranchPhase::kWaiting && b.phase != BranchPhase::kPreempted) continue;
      if (total_running >= config_.max_running_branches) break;
      // Nothing running at all: start one branch whatever its projection, so work proceeds.
      const bool first = total_running == 0;
      if (cap.ForkBound() > budget || (!first && committed + projected > budget)) {
        d.capacity_limited = true;
        break;
      }
      committed += projected;
      b.seq = NewSeq();
      b.replay_pending = b.phase == BranchPhase::kPreempted && !b.tokens.empty();
      b.phase = BranchPhase::kRunning;
      fork.children.push_back({b.index, b.seq});
      budget -= cap.ForkBound();
      ++total_running;
    }
    if (!fork.children.empty()) d.forks.push_back(std::move(fork));
  }
  d.reserved_pages = cap.free_pages - budget;
  return d;
}

}  // namespace rami::coordinator
