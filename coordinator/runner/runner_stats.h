// RunnerStats: what GetServerInfo and `rami info` report of the runner — steps, branches,
// scheduling cost, preemptions, relocations, and each worker group's state and pages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/scheduler/scheduler.h"

namespace rami::coordinator {

struct GroupStats {
  std::string ranks;
  std::string state;
  std::string error;
  int64_t num_pages = 0;
  int64_t free_pages = 0;
  int64_t branches_placed = 0;
  uint64_t steps = 0;
  int page_size = 0;
  int64_t streams = 0;
  double eviction_rate = 0;
  int64_t dms_window = 0;
  int64_t prefix_entries = 0;  // cached prefixes held now
  int64_t prefix_tokens = 0;   // their tokens
  int64_t prefix_pages = 0;    // the pages they are expected to hold
};

struct RunnerStats {
  uint64_t steps = 0;
  int jobs_active = 0;
  int branches_running = 0;
  int max_branches_running = 0;  // most branches decoding in one step of one group
  // Concurrency at the memory limit: branches decoded in steps where pages (not work) were
  // the limit, and the number of such steps.
  int64_t decode_tokens = 0;
  int64_t decode_steps = 0;
  int64_t preemptions = 0;
  int64_t relocated_branches = 0;  // moved off a failed or leaving group
  double step_ms_total = 0;        // wall time of the workers' steps (plan → results)
  double schedule_ms_total = 0;    // time spent planning and applying results
  double plan_ms_total = 0;        // of which planning (PlanStep: scheduler, worker plan)
  int64_t free_pages = 0;          // summed over serving groups
  int64_t prefill_tokens = 0;      // prompt tokens sent to the workers in prefill chunks
  bool prefix_cache_enabled = false;
  PrefixCacheEvents prefix;  // the prefix caches' events, summed over groups and loads
  int groups_known = 0;
  int groups_serving = 0;
  std::vector<GroupStats> groups;
};

}  // namespace rami::coordinator
