// Placement: which worker group each branch of a job runs on, decided when the job is
// submitted and again when its group fails. Greedy by headroom — the pages a group can still
// promise once the work placed there but not started is counted — so equal groups split a job
// evenly and a small job stays on one group when the others have less room than its prompt
// costs (each group a job is on prefills the prompt once).
#pragma once

#include <cstdint>
#include <vector>

#include "coordinator/runner/job_state.h"
#include "coordinator/scheduler/capacity.h"
#include "coordinator/scheduler/prefix_cache.h"

namespace rami::coordinator {

// A serving group as placement sees it.
struct PlacementGroup {
  int id = 0;
  const Capacity* capacity = nullptr;         // the group's, as of its last step
  int64_t headroom = 0;                       // Headroom() of the group, then what placing took
  const PrefixCache* prefix_cache = nullptr;  // the group's cached prefixes (may be null)
};

// Pages group `group` can still promise: its free pages minus, for every job part placed
// there, the projected pages of its branches not started yet and of its prompt still to
// prefill.
int64_t Headroom(int group, const Capacity& capacity, const JobTable& jobs);

// Puts each of `branches` (records of `job` on no group) on the group where the most pages
// remain once it — and, on a group the job is not on yet, a copy of its prompt less the
// longest prefix that group has cached (so a group holding the job's prefix is preferred
// unless its load says otherwise) — is counted;
// lowers that group's headroom. Returns the chosen group of each branch, in order. `groups`
// must not be empty.
std::vector<int> PlaceBranches(JobState& job, std::vector<Branch> branches,
                               std::vector<PlacementGroup>& groups);

// A job without branches (score-only): its root goes where the most pages remain once its
// prompt is counted. Returns the group. `groups` must not be empty.
int PlaceRoot(JobState& job, std::vector<PlacementGroup>& groups);

}  // namespace rami::coordinator
