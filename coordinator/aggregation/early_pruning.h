// DeepConf-style online early stopping for one job: EarlyPruner sets the confidence threshold
// from the first warm-up branches and prunes running branches below it; VoteDecided says when
// the branches still to come can no longer change the answer. Definitions in
// docs/aggregation.md §4.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "coordinator/aggregation/aggregator.h"

namespace rami::aggregation {

// The request's EarlyPruning, already validated (the constructor only RAMI_CHECKs).
struct PruningParams {
  int warmup_branches = 4;   // M ≥ 1: voting branches that finish before a threshold exists
  int window_tokens = 64;    // K ≥ 1: as BranchConfidence's window
  double percentile = 10.0;  // p in [0, 100]
};

// The p-th percentile of `values` (non-empty, no NaN; any order) by linear interpolation
// between the closest ranks — numpy.percentile's default method ("linear", Hyndman & Fan
// type 7), including its interpolation formula, so thresholds match DeepConf's reference code.
double Percentile(std::span<const double> values, double p);

class EarlyPruner {
 public:
  explicit EarlyPruner(const PruningParams& params);

  // Call once per branch as it finishes. The first M branches that vote (see Votes) are the
  // warm-up: the M-th sets the threshold to the p-th percentile of their confidences. It then
  // stays fixed for the rest of the job; later branches do not move it.
  void OnBranchFinished(FinishReason reason, double confidence);

  bool has_threshold() const { return threshold_.has_value(); }
  // Only with has_threshold().
  double threshold() const { return *threshold_; }

  // For a running branch, after each token: true once a threshold exists, the branch has at
  // least K tokens (a full window) and its confidence is strictly below the threshold.
  bool ShouldPrune(double branch_confidence, int64_t tokens_generated) const;

 private:
  PruningParams params_;
  std::vector<double> warmup_confidences_;
  std::optional<double> threshold_;
};

// True when the answer can no longer change: no branch remains, or (majority and weighted
// vote) the leading non-empty answer beats the best other non-empty answer by more than the
// most the remaining branches could add to it — 1 each for a majority vote,
// `max_branch_weight` (≥ 0; +inf = unknown) each for a weighted vote. A tie is never decided.
// `votes` is the table Aggregate gives for the finished branches (any order);
// `remaining_branches` counts every branch that may still vote (running, waiting, preempted).
// kNone and kBestLogprob are decided only when no branch remains: any branch still to come
// could have the best mean log-prob.
bool VoteDecided(AggregationPolicy policy, std::span<const Vote> votes, int remaining_branches,
                 double max_branch_weight = INFINITY);

}  // namespace rami::aggregation
