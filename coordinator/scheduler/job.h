// Job and Branch: the coordinator's state of one best-of-N request as the scheduler sees it —
// a prompt prefilled once into a root sequence, then n branches forked from the root, each a
// worker sequence of its own. Plain data, owned by the JobTable; no gRPC, no device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/sampling_params.h"

namespace rami::coordinator {

using SeqId = int64_t;
using JobId = int64_t;

enum class BranchPhase {
  kWaiting,    // not forked yet (the prompt is still prefilling, or no capacity)
  kRunning,    // a live worker sequence
  kPreempted,  // freed under memory pressure; re-forked and recomputed later
  kFinished,
};

struct Branch {
  int index = 0;
  BranchPhase phase = BranchPhase::kWaiting;
  SeqId seq = -1;               // its worker sequence while running
  SamplingParams sampling;      // as the workers take it: seed + index, the job's logprobs
  std::vector<int32_t> tokens;  // accepted generated tokens
  // Recompute after preemption: the re-fork's sampled token is a replay (ignored), then a
  // chunk replays `tokens`.
  bool replay_pending = false;
  bool free_pending = false;  // its sequence must be freed in the next plan

  // Ends the branch: its sequence (if any) is freed by the next plan and nothing else of it is
  // planned (a pending replay included: its sequence is about to go).
  void Finish() {
    if (seq >= 0) free_pending = true;
    phase = BranchPhase::kFinished;
    replay_pending = false;
  }
};

enum class JobPhase { kQueued, kPrefilling, kRunning, kFinished };

struct Job {
  JobId id = 0;
  int priority = 0;
  int64_t arrival = 0;  // admission order (FCFS within a priority)
  std::vector<int32_t> prompt;
  int64_t max_tokens = 0;   // per branch; 0 = unknown (no footprint projection)
  SeqId root = -1;          // the frozen snapshot branches fork from
  size_t prefilled = 0;     // prompt tokens already in the root
  bool root_ready = false;  // the prompt is fully prefilled (the root holds logits)
  bool root_free_pending = false;
  JobPhase phase = JobPhase::kQueued;
  std::vector<Branch> branches;
  // The root's sampling parameters (it never samples: `logprobs` is the top-n of its prompt
  // scoring) and whether its chunks score the prompt (PrefillChunk.prompt_logprobs).
  SamplingParams root_sampling;
  bool prompt_logprobs = false;
  // Prefix caching (prefix_cache.h): whether the job may use and make cache entries, the scope
  // they live in (its API key and cache salt), and the prompt positions to snapshot at
  // (sorted, each in (0, prompt size); the whole prompt is cached by keeping the root).
  bool prefix_cache = false;
  std::string prefix_scope;
  std::vector<int64_t> snapshot_points;
  int64_t cached_tokens = 0;  // prompt tokens its root copied from the cache, not prefilled
  bool cache_root = true;     // false once the job failed: its root is freed, never cached

  int RunningBranches() const;
  bool AllBranchesFinished() const;
};

}  // namespace rami::coordinator
