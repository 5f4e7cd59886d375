// Greedy placement of branches on worker groups by headroom.
#include "coordinator/runner/placement.h"

#include "base/check.h"

namespace rami::coordinator {
namespace {

// Pages one branch of `job` is expected to need on a group of `capacity`.
int64_t BranchPages(const Job& job, const Capacity& capacity) {
  return job.max_tokens > 0 ? capacity.ProjectedBranchPages(job.max_tokens) : capacity.ForkBound();
}

}  // namespace

int64_t Headroom(int group, const Capacity& capacity, const JobTable& jobs) {
  int64_t promised = 0;
  for (const auto& [id, job] : jobs) {
    auto part = job->parts.find(group);
    if (part == job->parts.end()) continue;
    const Job& p = part->second;
    for (const Branch& b : p.branches) {
      if (b.phase == BranchPhase::kWaiting || b.phase == BranchPhase::kPreempted) {
        promised += BranchPages(p, capacity);
      }
    }
    if (!p.root_ready) {
      promised += capacity.ChunkBound(static_cast<int64_t>(p.prompt.size() - p.prefilled));
    }
  }
  return capacity.free_pages - promised;
}

std::vector<int> PlaceBranches(JobState& job, std::vector<Branch> branches,
                               std::vector<PlacementGroup>& groups) {
  RAMI_CHECK(!groups.empty(), "placement needs a serving group");
  const int64_t prompt = static_cast<int64_t>(job.facts().prompt.size());
  std::vector<int> chosen;
  for (Branch& b : branches) {
    PlacementGroup* best = nullptr;
    int64_t best_room = 0;
    for (PlacementGroup& g : groups) {
      int64_t room = g.headroom;
      if (!job.parts.count(g.id)) room -= g.capacity->ChunkBound(prompt);
      if (best == nullptr || room > best_room) {
        best = &g;
        best_room = room;
      }
    }
    const bool fresh = job.AddToGroup(best->id, std::move(b));
    if (fresh) best->headroom -= best->capacity->ChunkBound(prompt);
    best->headroom -= BranchPages(job.facts(), *best->capacity);
    chosen.push_back(best->id);
  }
  return chosen;
}

int PlaceRoot(JobState& job, std::vector<PlacementGroup>& groups) {
  RAMI_CHECK(!groups.empty(), "placement needs a serving group");
  const int64_t prompt = static_cast<int64_t>(job.facts().prompt.size());
  PlacementGroup* best = &groups[0];
  for (PlacementGroup& g : groups) {
    if (g.headroom - g.capacity->ChunkBound(prompt) >
        best->headroom - best->capacity->ChunkBound(prompt)) {
      best = &g;
    }
  }
  job.AddRootOnly(best->id);
  best->headroom -= best->capacity->ChunkBound(prompt);
  return best->id;
}

}  // namespace rami::coordinator
