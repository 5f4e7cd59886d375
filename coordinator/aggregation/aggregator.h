// Aggregate: turns the finished branches of a best-of-N job into the job's answer and its vote
// table (majority vote, confidence-weighted vote, best mean log-prob, or none). Plain structs;
// the service converts to and from rami.v1. Definitions in docs/aggregation.md §3.
#pragma once

#include <span>
#include <string>
#include <vector>

namespace rami::aggregation {

// Mirrors rami.v1.AggregationPolicy (the service maps UNSPECIFIED to kNone).
enum class AggregationPolicy {
  kNone,
  kMajorityVote,  // most branches
  kWeightedVote,  // largest sum of branch confidences
  kBestLogprob,   // the single branch with the highest mean token log-prob
};

// Mirrors rami.v1.FinishReason.
enum class FinishReason {
  kEos,
  kStopString,
  kStopToken,
  kMaxTokens,
  kAborted,
  kPruned,
};

// Whether a branch that ended this way takes part in aggregation: pruned branches were judged
// unreliable and aborted ones never finished their reasoning, so neither votes.
bool Votes(FinishReason reason);

// One branch as aggregation sees it.
struct BranchOutcome {
  int branch = 0;  // index within the job; breaks ties (lower first)
  FinishReason reason = FinishReason::kEos;
  std::string answer;         // extracted and normalised; "" = no answer
  double confidence = 0.0;    // BranchConfidence::confidence()
  double mean_logprob = 0.0;  // BranchConfidence::mean_logprob()
};

// One distinct answer among the voting branches.
struct Vote {
  std::string answer;
  int count = 0;         // voting branches with this answer
  double weight = 0.0;   // sum of their confidences
  int first_branch = 0;  // lowest branch index among them (the tie-breaker)
};

struct AggregationResult {
  // The winner; "" under kNone, or when no voting branch has a non-empty answer.
  std::string answer;
  // Every distinct answer of the voting branches, non-empty answers first, ordered by weight
  // under kWeightedVote and by count otherwise, ties to the lower first_branch; the "" entry
  // (branches without an answer), if any, comes last. Under kMajorityVote and kWeightedVote a
  // non-empty votes[0] is the answer.
  std::vector<Vote> votes;
};

// Deterministic: the result depends on the set of outcomes, not on their order.
AggregationResult Aggregate(AggregationPolicy policy, std::span<const BranchOutcome> branches);

}  // namespace rami::aggregation
