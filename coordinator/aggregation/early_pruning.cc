// DeepConf online pruning and the vote-decided test (see early_pruning.h).
#include "coordinator/aggregation/early_pruning.h"

#include <algorithm>

#include "base/check.h"

namespace rami::aggregation {
namespace {

// Whether the leading non-empty answer's key (count or weight, from `key`) exceeds every other
// answer's key even after `remaining` more branches add `per_branch` each to the strongest.
template <typename Key>
bool LeadIsSafe(std::span<const Vote> votes, int remaining, double per_branch, Key key) {
  bool any = false;
  double leader = 0.0, runner_up = 0.0;  // a new answer from a remaining branch starts at 0
  for (const Vote& vote : votes) {
    if (vote.answer.empty()) continue;  // "" never wins, so it can neither lead nor overtake
    const double k = key(vote);
    if (!any || k > leader) {
      if (any) runner_up = leader;
      leader = k;
      any = true;
    } else if (k > runner_up) {
      runner_up = k;
    }
  }
  return any && leader > runner_up + remaining * per_branch;
}

}  // namespace

double Percentile(std::span<const double> values, double p) {
  RAMI_CHECK(!values.empty(), "percentile of no values");
  RAMI_CHECK(p >= 0.0 && p <= 100.0, "percentile %g", p);
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  const double rank = static_cast<double>(sorted.size() - 1) * (p / 100.0);
  const size_t below = static_cast<size_t>(std::floor(rank));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  const double t = rank - static_cast<double>(below);
  const double a = sorted[below], b = sorted[above];
  // numpy's _lerp: from whichever end is nearer, which is exact at t = 0 and t = 1.
  return t >= 0.5 ? b - (b - a) * (1.0 - t) : a + (b - a) * t;
}

EarlyPruner::EarlyPruner(const PruningParams& params) : params_(params) {
  RAMI_CHECK(params.warmup_branches >= 1, "warmup_branches %d", params.warmup_branches);
  RAMI_CHECK(params.window_tokens >= 1, "window_tokens %d", params.window_tokens);
  RAMI_CHECK(params.percentile >= 0.0 && params.percentile <= 100.0, "percentile %g",
             params.percentile);
  warmup_confidences_.reserve(params.warmup_branches);
}

void EarlyPruner::OnBranchFinished(FinishReason reason, double confidence) {
  if (threshold_.has_value() || !Votes(reason)) return;
  warmup_confidences_.push_back(confidence);
  if (warmup_confidences_.size() == static_cast<size_t>(params_.warmup_branches)) {
    threshold_ = Percentile(warmup_confidences_, params_.percentile);
  }
}

bool EarlyPruner::ShouldPrune(double branch_confidence, int64_t tokens_generated) const {
  return threshold_.has_value() && tokens_generated >= params_.window_tokens &&
         branch_confidence < *threshold_;
}

bool VoteDecided(AggregationPolicy policy, std::span<const Vote> votes, int remaining_branches,
                 double max_branch_weight) {
  RAMI_CHECK(remaining_branches >= 0, "remaining_branches %d", remaining_branches);
  RAMI_CHECK(!(max_branch_weight < 0.0), "max_branch_weight %g", max_branch_weight);
  if (remaining_branches == 0) return true;
  switch (policy) {
    case AggregationPolicy::kNone:
    case AggregationPolicy::kBestLogprob:
      return false;
    case AggregationPolicy::kMajorityVote:
      return LeadIsSafe(votes, remaining_branches, 1.0,
                        [](const Vote& v) { return static_cast<double>(v.count); });
    case AggregationPolicy::kWeightedVote:
      return LeadIsSafe(votes, remaining_branches, max_branch_weight,
                        [](const Vote& v) { return v.weight; });
  }
  return false;
}

}  // namespace rami::aggregation
