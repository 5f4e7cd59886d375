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

namespace rami::coordinator {

struct SchedulerConfig {
  int max_step_tokens = 2048;    // prefill + decode tokens per step
  int max_step_sequences = 256;  // sequences with tokens per step (at most max_step_tokens)
  int max_prefill_chunk = 512;   // tokens of one prompt per step
  int max_running_branches = 1024;
  absl::Status Validate() const;
};

struct BranchRef {
  JobId job = 0;
  int branch = -1;  // -1: the job's root
};

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
  std::vector<BranchRef> preempted;  // branches freed by this plan, to be recomputed
  int64_t reserved_pages = 0;        // the plan's page bound
  bool capacity_limited = false;     // pages, not work, limited this step
  bool empty() const {
    return frees.empty() && prefills.empty() && decodes.empty() && forks.empty();
  }
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config) : config_(config) {}

  // Plans one step over `jobs` (highest priority first, FCFS within a priority) and applies
  // the plan's transitions to them: sequence ids, phases, pending frees and replays.
  StepDecision Plan(const std::vector<Job*>& jobs, const Capacity& capacity);

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

  SchedulerConfig config_;
  SeqId next_seq_ = 1;
};

// Orders jobs as the scheduler serves them: priority (higher first), then arrival.
void SortForScheduling(std::vector<Job*>& jobs);

}  // namespace rami::coordinator
