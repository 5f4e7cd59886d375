// Greedy placement of branches on worker groups by headroom.
#include "coordinator/runner/placement.h"

#include <limits>

#include "base/check.h"

namespace rami::coordinator {
namespace {

// Pages one branch of `job` is expected to need on a group of `capacity`.
int64_t BranchPages(const Job& job, const Capacity& capacity) {
  return job.max_tokens > 0 ? capacity.ProjectedBranchPages(job.max_tokens) : capacity.ForkBound();
}

// Pages a copy of the job's prompt takes on `g`: what its cache does not hold yet.
int64_t PromptPages(const Job& job, const PlacementGroup& g) {
  int64_t tokens = static_cast<int64_t>(job.prompt.size());
  if (g.prefix_cache != nullptr && job.prefix_cache && !job.prompt_logprobs) {
    if (const PrefixEntry* hit = g.prefix_cache->Longest(job.prefix_scope, job.prompt,
                                                         std::numeric_limits<uint64_t>::max())) {
      tokens -= static_cast<int64_t>(hit->tokens.size());
    }
  }
  return g.capacity->ChunkBound(tokens);
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
  std::vector<int64_t> prompt_pages;
  for (const PlacementGroup& g : groups) prompt_pages.push_back(PromptPages(job.facts(), g));
  std::vector<int> chosen;
  for (Branch& b : branches) {
    size_t best = 0;
    int64_t best_room = 0;
    for (size_t i = 0; i < groups.size(); ++i) {
      int64_t room = groups[i].headroom;
      if (!job.parts.count(groups[i].id)) room -= prompt_pages[i];
      if (i == 0 || room > best_room) {
        best = i;
        best_room = room;
      }
    }
    PlacementGroup& g = groups[best];
    const bool fresh = job.AddToGroup(g.id, std::move(b));
    if (fresh) g.headroom -= prompt_pages[best];
    g.headroom -= BranchPages(job.facts(), *g.capacity);
    chosen.push_back(g.id);
  }
  return chosen;
}

int PlaceRoot(JobState& job, std::vector<PlacementGroup>& groups) {
  RAMI_CHECK(!groups.empty(), "placement needs a serving group");
  PlacementGroup* best = &groups[0];
  for (PlacementGroup& g : groups) {
    if (g.headroom - PromptPages(job.facts(), g) >
        best->headroom - PromptPages(job.facts(), *best)) {
      best = &g;
    }
  }
  job.AddRootOnly(best->id);
  best->headroom -= PromptPages(job.facts(), *best);
  return best->id;
}

}  // namespace rami::coordinator
