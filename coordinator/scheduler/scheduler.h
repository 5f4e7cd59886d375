// Scheduler: the pure function at the heart of the coordinator — jobs + capacity → one
// StepPlan for a worker group (decide once, execute everywhere). Continuous
// batching: each step decodes every running branch it can afford, replays preempted
// branches, and spends what is left of the token budget on prefill chunks of prefilling and
// queued jobs in priority/FCFS order; a prompt whose last chunk runs is forked into its
// branches in the same step. When pages run short the youngest branches are preempted
// (freed; later re-forked from the frozen root and recomputed) — never silently lost.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/scheduler/capacity.h"
#include "coordinator/scheduler/job.h"
#include "coordinator/scheduler/prefix_cache.h"

namespace rami::coordinator {

struct SchedulerConfig {
  int max_step_tokens = 2048;    // prefill + decode tokens per step
  int max_step_sequences = 256;  // sequences with tokens per step (at most max_step_tokens)
  int max_prefill_chunk = 512;   // tokens of one prompt per step
  int max_running_branches = 1024;
  // Prefix caching (prefix_cache.h): on, and the share of the pool its entries may hold
  // (beyond it the least recently used are freed; under memory pressure they go first).
  bool prefix_cache = true;
  double prefix_cache_fraction = 0.5;
  absl::Status Validate() const;
};

struct BranchRef {
  JobId job = 0;
  int branch = -1;  // -1: the job's root
};

// The owner of prefix-cache entries' sequences (no job's).
inline constexpr BranchRef kPrefixCacheOwner{.job = -1, .branch = -1};

struct PlannedPrefill {
  SeqId seq = 0;
  BranchRef owner;
  std::vector<int32_t> tokens;
  bool create = false;
  bool sample = false;
  int64_t generated_tokens = 0;  // > 0: a replay of the branch's own tokens
  // With `create`: the sequence's sampling parameters (the job's root_sampling).
  SamplingParams sampling;
  bool prompt_logprobs = false;  // score the chunk's tokens (the job's root)
  // With `create`: the sequence starts as a copy of this cached snapshot (-1: empty); the
  // chunk continues it and may be empty (the whole prompt was cached).
  SeqId copy_of = -1;
};

// A prefix-cache snapshot of a root, taken after the step's forward pass.
struct PlannedSnapshot {
  SeqId source = 0;
  SeqId seq = 0;
};

// What the prefix cache did in one step (the runner sums these into its statistics).
struct PrefixCacheEvents {
  int64_t hits = 0;           // jobs whose root was copied from a cached prefix
  int64_t misses = 0;         // jobs that looked and found nothing
  int64_t cached_tokens = 0;  // prompt tokens the hits did not prefill
  int64_t evictions = 0;      // entries freed (the cap, or memory pressure)
  int64_t inserted = 0;       // entries made (snapshots and kept roots)

  PrefixCacheEvents& operator+=(const PrefixCacheEvents& o) {
    hits += o.hits;
    misses += o.misses;
    cached_tokens += o.cached_tokens;
    evictions += o.evictions;
    inserted += o.inserted;
    return *this;
  }
};

struct PlannedDecode {
  SeqId seq = 0;
  BranchRef owner;
};

struct PlannedForkChild {
  int branch = 0;  // the branch's index in its job
  SeqId seq = 0;   // its new sequence
  SamplingParams sampling;
};

struct PlannedFork {
  SeqId parent = 0;
  JobId job = 0;
  std::vector<PlannedForkChild> children;
};

struct StepDecision {
  std::vector<SeqId> frees;
  std::vector<PlannedPrefill> prefills;
  std::vector<PlannedDecode> decodes;
  std::vector<PlannedFork> forks;
  std::vector<PlannedSnapshot> snapshots;
  // Sequences that became prefix-cache entries in this plan (snapshots, and finished jobs'
  // roots kept instead of freed): they belong to no job from now on.
  std::vector<SeqId> cached;
  PrefixCacheEvents prefix;
  std::vector<BranchRef> preempted;  // branches freed by this plan, to be recomputed
  int64_t reserved_pages = 0;        // the plan's page bound
  bool capacity_limited = false;     // pages, not work, limited this step
  bool empty() const {
    return frees.empty() && prefills.empty() && decodes.empty() && forks.empty() &&
           snapshots.empty() && cached.empty();
  }
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config) : config_(config) {}

  // Plans one step over `jobs` (highest priority first, FCFS within a priority) and applies
  // the plan's transitions to them: sequence ids, phases, pending frees and replays.
  StepDecision Plan(const std::vector<Job*>& jobs, const Capacity& capacity);

  // The group's cached prefixes (entries hold worker sequences of this scheduler's ids).
  const PrefixCache& prefix_cache() const { return cache_; }

 private:
  // One step's plan in the making: the decision and what is left of its budgets.
  struct Step;

  SeqId NewSeq() { return next_seq_++; }
  // The phases of Plan, in order; each spends what the previous ones left.
  void PlanFrees(const std::vector<Job*>& jobs, Step& step);
  void PlanDecodes(const std::vector<Job*>& jobs, Step& step);
  void PlanReplays(const std::vector<Job*>& jobs, Step& step);
  void PlanPrefills(const std::vector<Job*>& jobs, Step& step);
  void PlanForks(const std::vector<Job*>& jobs, Step& step);
  void PlanCacheCap(Step& step);
  // Prefix cache: whether `job` may copy a cached prefix / make entries; the first snapshot
  // point after `start` not cached yet (-1: none); the finished job's root kept as the entry
  // of its whole prompt (false: it is to be freed); entries freed until the evicted ones'
  // pages cover `shortfall` (false: nothing to evict).
  bool LooksUp(const Job& job) const;
  bool MakesEntries(const Job& job) const;
  int64_t NextPoint(const Job& job, int64_t start) const;
  bool KeepRoot(Job& job, Step& step);
  bool EvictFor(int64_t shortfall, Step& step);

  SchedulerConfig config_;
  SeqId next_seq_ = 1;
  uint64_t steps_ = 0;  // plans made: the prefix cache's clock
  PrefixCache cache_;
};

// Orders jobs as the scheduler serves them: priority (higher first), then arrival.
void SortForScheduling(std::vector<Job*>& jobs);

}  // namespace rami::coordinator
