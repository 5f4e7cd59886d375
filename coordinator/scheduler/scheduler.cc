// One scheduling step: frees, decodes (with preemption), replays, prefill chunks, forks.
#include "coordinator/scheduler/scheduler.h"

#include <algorithm>
#include <utility>

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
  const std::pair<const char*, int> fields[] = {{"max_step_tokens", max_step_tokens},
                                                {"max_step_sequences", max_step_sequences},
                                                {"max_prefill_chunk", max_prefill_chunk},
                                                {"max_running_branches", max_running_branches}};
  for (const auto& [name, value] : fields) {
    if (value < 1) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": must be >= 1, found ", value));
    }
  }
  if (!(prefix_cache_fraction >= 0 && prefix_cache_fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefix_cache_fraction: must be in [0, 1], found ", prefix_cache_fraction));
  }
  return absl::OkStatus();
}

void SortForScheduling(std::vector<Job*>& jobs) {
  std::stable_sort(jobs.begin(), jobs.end(), [](const Job* a, const Job* b) {
    if (a->priority != b->priority) return a->priority > b->priority;
    return a->arrival < b->arrival;
  });
}

struct Scheduler::Step {
  explicit Step(const Capacity& capacity) : cap(capacity) {}

  const Capacity& cap;
  StepDecision d;
  int64_t budget = 0;       // pages not yet spent
  int64_t tokens_left = 0;  // of max_step_tokens
  int64_t sequences_left = 0;
  int total_running = 0;  // branches running once this step's preemptions are made

  // Frees `seq`; the pages it holds alone pay for this step (unknown: count none).
  void Free(SeqId seq) {
    d.frees.push_back(seq);
    auto it = cap.unshared_pages.find(seq);
    if (it != cap.unshared_pages.end()) budget += it->second;
  }
  void Preempt(Job* job, Branch* b) {
    Free(b->seq);
    b->seq = -1;
    b->phase = BranchPhase::kPreempted;
    d.preempted.push_back({job->id, b->index});
  }
  // Under memory pressure (a branch had to yield, or decodes wait for the pages of evicted
  // prefixes) nothing new starts this step: admitting work now would only be preempted again
  // (thrashing).
  bool pressure() const { return !d.preempted.empty() || waiting_for_pages; }
  bool waiting_for_pages = false;
};

StepDecision Scheduler::Plan(const std::vector<Job*>& jobs, const Capacity& cap) {
  ++steps_;
  Step step(cap);
  step.budget = cap.free_pages;
  step.tokens_left = config_.max_step_tokens;
  // Each decode and prefill chunk takes one (and at least one token).
  step.sequences_left = std::min(config_.max_step_sequences, config_.max_step_tokens);
  PlanFrees(jobs, step);
  PlanDecodes(jobs, step);
  PlanReplays(jobs, step);
  step.d.capacity_limited = step.pressure();
  for (Job* job : jobs) step.total_running += job->RunningBranches();
  PlanPrefills(jobs, step);
  PlanForks(jobs, step);
  PlanCacheCap(step);
  step.d.reserved_pages = cap.free_pages - step.budget;
  return std::move(step.d);
}

// 1. Frees of finished branches and finished jobs' roots: their pages serve this step.
void Scheduler::PlanFrees(const std::vector<Job*>& jobs, Step& step) {
  for (Job* job : jobs) {
    for (Branch& b : job->branches) {
      if (!b.free_pending) continue;
      step.Free(b.seq);
      b.seq = -1;
      b.free_pending = false;
    }
    if (job->root_free_pending) {
      if (!KeepRoot(*job, step)) step.Free(job->root);
      job->root = -1;
      job->root_free_pending = false;
    }
  }
}

// 6. The cache's share of the pool: the least recently used entries beyond it go — after the
// prefills looked them up, and never one this plan made or copies.
void Scheduler::PlanCacheCap(Step& step) {
  const double cap = config_.prefix_cache_fraction * static_cast<double>(step.cap.num_pages);
  while (static_cast<double>(cache_.pages()) > cap) {
    const PrefixEntry victim = cache_.EvictLru(steps_);
    if (victim.seq < 0) break;
    step.Free(victim.seq);
    ++step.d.prefix.evictions;
  }
}

bool Scheduler::LooksUp(const Job& job) const {
  // A scored prompt needs every token computed: it makes entries but never copies one.
  return MakesEntries(job) && !job.prompt_logprobs;
}

bool Scheduler::MakesEntries(const Job& job) const {
  return config_.prefix_cache && config_.prefix_cache_fraction > 0 && job.prefix_cache;
}

int64_t Scheduler::NextPoint(const Job& job, int64_t start) const {
  if (!MakesEntries(job)) return -1;
  const absl::Span<const int32_t> prompt(job.prompt);
  for (int64_t point : job.snapshot_points) {
    if (point <= start || point >= static_cast<int64_t>(prompt.size())) continue;
    if (cache_.Find(job.prefix_scope, prompt.subspan(0, point)) == nullptr) return point;
  }
  return -1;
}

bool Scheduler::KeepRoot(Job& job, Step& step) {
  if (!MakesEntries(job) || !job.cache_root || !job.root_ready || job.root < 0) return false;
  if (const PrefixEntry* same = cache_.Find(job.prefix_scope, job.prompt)) {
    cache_.Touch(same->seq, steps_);
    return false;
  }
  const int64_t tokens = static_cast<int64_t>(job.prompt.size());
  // The root exists already: this very plan may copy it.
  cache_.Insert(job.prefix_scope, job.prompt, job.root, steps_,
                step.cap.ProjectedBranchPages(tokens), /*usable_from=*/steps_);
  step.d.cached.push_back(job.root);
  ++step.d.prefix.inserted;
  return true;
}

bool Scheduler::EvictFor(int64_t shortfall, Step& step) {
  // The workers free an entry's pages only when no running copy shares them, and its last
  // report counted the pages freeing it certainly returns (what Step::Free credits): the
  // rest shows in the next step's free pages. So entries go until their expected pages cover
  // the shortfall, and the step's budget grows only by what is certain.
  int64_t expected = 0;
  bool evicted = false;
  while (expected < shortfall) {
    const PrefixEntry victim = cache_.EvictLru(steps_);
    if (victim.seq < 0) break;
    step.Free(victim.seq);
    expected += victim.pages;
    ++step.d.prefix.evictions;
    evicted = true;
  }
  return evicted;
}

// 2. Decodes, oldest job first; when pages run short, the youngest running branches yield.
void Scheduler::PlanDecodes(const std::vector<Job*>& jobs, Step& step) {
  struct Running {
    Job* job;
    Branch* branch;
  };
  std::vector<Running> running;
  for (Job* job : jobs) {
    for (Branch& b : job->branches) {
      if (b.phase == BranchPhase::kRunning && !b.replay_pending) running.push_back({job, &b});
    }
  }
  size_t end = running.size();  // running[i, end) are not scheduled yet
  for (size_t i = 0; i < end; ++i) {
    auto [job, b] = running[i];
    const int64_t need = step.cap.DecodeBound(b->seq);
    // Cached prefixes yield before branches do: the rest of the decodes wait a step (keeping
    // their pages) for the pages of the evicted entries.
    if (need > step.budget && EvictFor(need - step.budget, step)) {
      step.waiting_for_pages = true;
      if (need > step.budget) break;
    }
    while (need > step.budget && end > i + 1) {
      --end;
      step.Preempt(running[end].job, running[end].branch);
    }
    if (need > step.budget) {
      step.Preempt(job, b);
      continue;
    }
    // The rest waits for the next step, keeping its pages.
    if (step.tokens_left < 1 || step.sequences_left < 1) break;
    step.d.decodes.push_back({b->seq, {job->id, b->index}});
    step.budget -= need;
    --step.tokens_left;
    --step.sequences_left;
  }
}

// 3. Replays of re-forked branches: their own tokens, resuming the random stream.
void Scheduler::PlanReplays(const std::vector<Job*>& jobs, Step& step) {
  for (Job* job : jobs) {
    for (Branch& b : job->branches) {
      // Only a running branch replays (its re-fork is in an earlier plan).
      if (!b.replay_pending || b.phase != BranchPhase::kRunning || b.seq < 0) continue;
      const int64_t n = static_cast<int64_t>(b.tokens.size());
      const int64_t bound = step.cap.ChunkBound(n);
      if (n > step.tokens_left || step.sequences_left < 1 || bound > step.budget) continue;
      PlannedPrefill replay;
      replay.seq = b.seq;
      replay.owner = {job->id, b.index};
      replay.tokens = b.tokens;
      replay.sample = true;
      replay.generated_tokens = n;
      step.d.prefills.push_back(std::move(replay));
      b.replay_pending = false;
      step.budget -= bound;
      step.tokens_left -= n;
      --step.sequences_left;
    }
  }
}

// 4. Prefill chunks in priority / FCFS order; a job that does not fit stops admission, so
// later jobs never overtake it (no starvation).
void Scheduler::PlanPrefills(const std::vector<Job*>& jobs, Step& step) {
  if (step.pressure()) return;
  const Capacity& cap = step.cap;
  for (Job* job : jobs) {
    if (job->phase != JobPhase::kQueued && job->phase != JobPhase::kPrefilling) continue;
    if (step.sequences_left < 1) break;
    // A new root starts from the longest cached prefix of its prompt, when there is one.
    const PrefixEntry* hit = nullptr;
    if (job->phase == JobPhase::kQueued && LooksUp(*job)) {
      hit = cache_.Longest(job->prefix_scope, job->prompt, steps_);
      // A longer prefix this very plan snapshots (another job's chunk ends there): waiting one
      // step for it costs a step, prefilling it again costs the whole prefix.
      const PrefixEntry* pending = cache_.Longest(job->prefix_scope, job->prompt, steps_ + 1);
      if (pending != hit) continue;
    }
    const int64_t start = hit != nullptr ? static_cast<int64_t>(hit->tokens.size())
                                         : static_cast<int64_t>(job->prefilled);
    const int64_t remaining = static_cast<int64_t>(job->prompt.size()) - start;
    int64_t chunk = std::min<int64_t>({remaining, config_.max_prefill_chunk, step.tokens_left});
    if (chunk < 1 && remaining > 0) break;  // no tokens left in this step
    // A chunk ends at the next snapshot point, whose prefix is then cached.
    const int64_t point = NextPoint(*job, start);
    if (point > 0) chunk = std::min(chunk, point - start);
    const bool last = chunk == remaining;
    const bool snapshot = point > 0 && start + chunk == point;
    const int64_t bound = (chunk > 0 ? cap.ChunkBound(chunk) : 0) +
                          (hit != nullptr ? cap.ForkBound() : 0) + (last ? cap.ForkBound() : 0) +
                          (snapshot ? cap.ForkBound() : 0);
    if (bound > step.budget) {
      EvictFor(bound - step.budget, step);
      step.d.capacity_limited = true;
      break;
    }
    PlannedPrefill p;
    if (job->phase == JobPhase::kQueued) {
      job->root = NewSeq();
      job->phase = JobPhase::kPrefilling;
      p.create = true;
      p.sampling = job->root_sampling;
      if (hit != nullptr) {
        p.copy_of = hit->seq;
        cache_.Touch(hit->seq, steps_);
        job->cached_tokens = start;
        ++step.d.prefix.hits;
        step.d.prefix.cached_tokens += start;
      } else if (LooksUp(*job)) {
        ++step.d.prefix.misses;
      }
    }
    p.prompt_logprobs = job->prompt_logprobs;
    p.seq = job->root;
    p.owner = {job->id, -1};
    p.tokens.assign(job->prompt.begin() + start, job->prompt.begin() + start + chunk);
    step.d.prefills.push_back(std::move(p));
    job->prefilled = static_cast<size_t>(start + chunk);
    step.budget -= bound - (last ? cap.ForkBound() : 0);  // the forks below pay for themselves
    step.tokens_left -= chunk;
    --step.sequences_left;
    if (snapshot) {
      const SeqId seq = NewSeq();
      step.d.snapshots.push_back({job->root, seq});
      step.d.cached.push_back(seq);
      cache_.Insert(job->prefix_scope,
                    std::vector<int32_t>(job->prompt.begin(), job->prompt.begin() + point), seq,
                    steps_, cap.ProjectedBranchPages(point), /*usable_from=*/steps_ + 1);
      ++step.d.prefix.inserted;
    }
    if (last) {
      job->root_ready = true;
      job->phase = JobPhase::kRunning;
    }
  }
}

// 5. Forks from ready roots: waiting and preempted branches, as pages and the batch allow.
// A branch starts only if the pages it is expected to need by its last token fit next to
// what the running branches are still expected to grow (their projection minus what they
// hold): starting branches that would later be preempted is wasted work (thrashing).
void Scheduler::PlanForks(const std::vector<Job*>& jobs, Step& step) {
  if (step.pressure()) return;
  const Capacity& cap = step.cap;
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
    if (!job->root_ready || job->root < 0) continue;
    PlannedFork fork{job->root, job->id, {}};
    const int64_t projected = job->max_tokens > 0 ? cap.ProjectedBranchPages(job->max_tokens) : 0;
    for (Branch& b : job->branches) {
      if (b.phase != BranchPhase::kWaiting && b.phase != BranchPhase::kPreempted) continue;
      if (step.total_running >= config_.max_running_branches) break;
      // Nothing running at all: start one branch whatever its projection, so work proceeds.
      const bool first = step.total_running == 0;
      if (cap.ForkBound() > step.budget || (!first && committed + projected > step.budget)) {
        step.d.capacity_limited = true;
        EvictFor(std::max(cap.ForkBound(), committed + projected) - step.budget, step);
        break;
      }
      committed += projected;
      b.seq = NewSeq();
      b.replay_pending = b.phase == BranchPhase::kPreempted && !b.tokens.empty();
      b.phase = BranchPhase::kRunning;
      fork.children.push_back({b.index, b.seq, b.sampling});
      step.budget -= cap.ForkBound();
      ++step.total_running;
    }
    if (!fork.children.empty()) step.d.forks.push_back(std::move(fork));
  }
}

}  // namespace rami::coordinator
