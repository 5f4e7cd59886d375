// Answer aggregation (see aggregator.h).
#include "coordinator/aggregation/aggregator.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"

namespace rami::aggregation {
namespace {

// NaN would break the strict weak ordering of the sort; a NaN score can never win.
double Score(double value) { return std::isnan(value) ? -INFINITY : value; }

// The order of the vote table: non-empty answers first, then the policy's key, then the
// lower first_branch (unique per answer, so the order is total).
bool VoteBefore(AggregationPolicy policy, const Vote& a, const Vote& b) {
  if (a.answer.empty() != b.answer.empty()) return b.answer.empty();
  if (policy == AggregationPolicy::kWeightedVote) {
    if (Score(a.weight) != Score(b.weight)) return Score(a.weight) > Score(b.weight);
  } else if (a.count != b.count) {
    return a.count > b.count;
  }
  return a.first_branch < b.first_branch;
}

}  // namespace

bool Votes(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEos:
    case FinishReason::kStopString:
    case FinishReason::kStopToken:
    case FinishReason::kMaxTokens:
      return true;
    case FinishReason::kAborted:
    case FinishReason::kPruned:
      return false;
  }
  return false;
}

AggregationResult Aggregate(AggregationPolicy policy, std::span<const BranchOutcome> branches) {
  AggregationResult result;
  absl::flat_hash_map<std::string, size_t> index;  // answer → position in result.votes
  const BranchOutcome* best = nullptr;             // kBestLogprob's winner so far
  // Visit in branch order so the floating-point weight sums, and hence near-ties, do not
  // depend on the order the branches finished in.
  std::vector<const BranchOutcome*> voters;
  for (const BranchOutcome& b : branches) {
    if (Votes(b.reason)) voters.push_back(&b);
  }
  std::sort(voters.begin(), voters.end(),
            [](const BranchOutcome* x, const BranchOutcome* y) { return x->branch < y->branch; });
  for (const BranchOutcome* voter : voters) {
    const BranchOutcome& b = *voter;
    auto [it, inserted] = index.try_emplace(b.answer, result.votes.size());
    if (inserted) result.votes.push_back({b.answer, 0, 0.0, b.branch});
    Vote& vote = result.votes[it->second];
    ++vote.count;
    vote.weight += b.confidence;
    // Strictly greater: on a tie the lower branch, visited first, keeps the win.
    if (!b.answer.empty() &&
        (best == nullptr || Score(b.mean_logprob) > Score(best->mean_logprob))) {
      best = &b;
    }
  }
  std::sort(result.votes.begin(), result.votes.end(),
            [policy](const Vote& a, const Vote& b) { return VoteBefore(policy, a, b); });

  switch (policy) {
    case AggregationPolicy::kNone:
      break;
    case AggregationPolicy::kMajorityVote:
    case AggregationPolicy::kWeightedVote:
      if (!result.votes.empty()) result.answer = result.votes.front().answer;  // "" if all are
      break;
    case AggregationPolicy::kBestLogprob:
      if (best != nullptr) result.answer = best->answer;
      break;
  }
  return result;
}

}  // namespace rami::aggregation
