// Early pruning: numpy-compatible percentiles (values computed by hand from numpy's "linear"
// definition), the warm-up threshold, prune decisions around the window and the threshold,
// and VoteDecided at and around the point where the runner-up could still catch up.
#include "coordinator/aggregation/early_pruning.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace rami::aggregation {
namespace {

constexpr double kTol = 1e-12;

TEST(PercentileTest, LinearInterpolationLikeNumpy) {
  const std::vector<double> v = {4.0, 1.0, 3.0, 2.0};  // sorted: 1 2 3 4, rank = 3p/100
  EXPECT_NEAR(Percentile(v, 0), 1.0, kTol);
  EXPECT_NEAR(Percentile(v, 10), 1.3, kTol);  // rank 0.3
  EXPECT_NEAR(Percentile(v, 50), 2.5, kTol);  // rank 1.5
  EXPECT_NEAR(Percentile(v, 90), 3.7, kTol);  // rank 2.7
  EXPECT_NEAR(Percentile(v, 100), 4.0, kTol);
  EXPECT_NEAR(Percentile(std::vector<double>{7.5}, 10), 7.5, kTol);
  // np.percentile([10, 20, 40], 25) = 15; ([10, 20, 40], 75) = 30.
  EXPECT_NEAR(Percentile(std::vector<double>{40, 10, 20}, 25), 15.0, kTol);
  EXPECT_NEAR(Percentile(std::vector<double>{40, 10, 20}, 75), 30.0, kTol);
}

TEST(PercentileTest, ExactAtRanksAndWithDuplicates) {
  const std::vector<double> v = {0.1, 0.2, 0.3, 0.4, 0.5};  // rank = 4p/100
  EXPECT_EQ(Percentile(v, 25), 0.2);                        // rank 1: the value itself, bitwise
  EXPECT_EQ(Percentile(v, 75), 0.4);
  EXPECT_EQ(Percentile(std::vector<double>{2, 2, 2, 9}, 50), 2.0);
}

TEST(EarlyPrunerTest, ThresholdFromTheFirstMVotingBranches) {
  EarlyPruner pruner({.warmup_branches = 4, .window_tokens = 8, .percentile = 10});
  EXPECT_FALSE(pruner.has_threshold());
  pruner.OnBranchFinished(FinishReason::kEos, 14.0);
  pruner.OnBranchFinished(FinishReason::kAborted, 0.0);  // does not count
  pruner.OnBranchFinished(FinishReason::kMaxTokens, 11.0);
  pruner.OnBranchFinished(FinishReason::kStopString, 13.0);
  EXPECT_FALSE(pruner.has_threshold());
  EXPECT_FALSE(pruner.ShouldPrune(0.0, 1000));  // no threshold yet: never prune
  pruner.OnBranchFinished(FinishReason::kStopToken, 12.0);
  ASSERT_TRUE(pruner.has_threshold());
  EXPECT_NEAR(pruner.threshold(), 11.3, kTol);  // 11 12 13 14 at rank 0.3
  // Fixed from now on.
  pruner.OnBranchFinished(FinishReason::kEos, 1.0);
  EXPECT_NEAR(pruner.threshold(), 11.3, kTol);
}

TEST(EarlyPrunerTest, PrunesOnlyFullWindowsStrictlyBelow) {
  EarlyPruner pruner({.warmup_branches = 1, .window_tokens = 8, .percentile = 50});
  pruner.OnBranchFinished(FinishReason::kEos, 10.0);
  ASSERT_NEAR(pruner.threshold(), 10.0, kTol);
  EXPECT_FALSE(pruner.ShouldPrune(2.0, 7));  // window not full yet
  EXPECT_TRUE(pruner.ShouldPrune(2.0, 8));
  EXPECT_TRUE(pruner.ShouldPrune(9.999, 500));
  EXPECT_FALSE(pruner.ShouldPrune(10.0, 500));  // at the threshold survives
  EXPECT_FALSE(pruner.ShouldPrune(10.5, 500));
}

TEST(EarlyPrunerTest, PercentileZeroAndHundred) {
  EarlyPruner low({.warmup_branches = 3, .window_tokens = 1, .percentile = 0});
  EarlyPruner high({.warmup_branches = 3, .window_tokens = 1, .percentile = 100});
  for (double c : {5.0, 3.0, 8.0}) {
    low.OnBranchFinished(FinishReason::kEos, c);
    high.OnBranchFinished(FinishReason::kEos, c);
  }
  EXPECT_EQ(low.threshold(), 3.0);   // prunes only what is below every warm-up branch
  EXPECT_EQ(high.threshold(), 8.0);  // keeps only what beats every warm-up branch
}

TEST(EarlyPrunerDeathTest, ParamsAreChecked) {
  EXPECT_DEATH(EarlyPruner({.warmup_branches = 0}), "warmup_branches");
  EXPECT_DEATH(EarlyPruner({.window_tokens = 0}), "window_tokens");
  EXPECT_DEATH(EarlyPruner({.percentile = 100.5}), "percentile");
}

Vote V(const char* answer, int count, double weight = 0.0) { return {answer, count, weight, 0}; }

TEST(VoteDecidedTest, MajorityLeadMustExceedRunnerUpPlusRemaining) {
  const std::vector<Vote> votes = {V("3", 5), V("5", 2), V("7", 1)};
  EXPECT_TRUE(VoteDecided(AggregationPolicy::kMajorityVote, votes, 2));   // 5 > 2 + 2
  EXPECT_FALSE(VoteDecided(AggregationPolicy::kMajorityVote, votes, 3));  // 5 = 2 + 3: a tie
  EXPECT_FALSE(VoteDecided(AggregationPolicy::kMajorityVote, votes, 4));
  // Table order does not matter.
  const std::vector<Vote> shuffled = {V("7", 1), V("5", 2), V("3", 5)};
  EXPECT_TRUE(VoteDecided(AggregationPolicy::kMajorityVote, shuffled, 2));
}

TEST(VoteDecidedTest, SingleAnswerCanBeOvertakenByANewOne) {
  const std::vector<Vote> votes = {V("3", 3)};
  EXPECT_TRUE(VoteDecided(AggregationPolicy::kMajorityVote, votes, 2));   // 3 > 0 + 2
  EXPECT_FALSE(VoteDecided(AggregationPolicy::kMajorityVote, votes, 3));  // 3 new votes tie
}

TEST(VoteDecidedTest, EmptyAnswersNeitherLeadNorChase) {
  // "" has the most votes but cannot win; "4" leads the real answers 2 to 0.
  const std::vector<Vote> votes = {V("", 6), V("4", 2)};
  EXPECT_TRUE(VoteDecided(AggregationPolicy::kMajorityVote, votes, 1));
  EXPECT_FALSE(VoteDecided(AggregationPolicy::kMajorityVote, votes, 2));
  // Only empty answers so far: undecided while anyone remains.
  EXPECT_FALSE(VoteDecided(AggregationPolicy::kMajorityVote, std::vector<Vote>{V("", 9)}, 1));
  EXPECT_FALSE(VoteDecided(AggregationPolicy::kMajorityVote, {}, 1));
}

TEST(VoteDecidedTest, EqualLeadersAreUndecided) {
  const std::vector<Vote> votes = {V("a", 4), V("b", 4)};
  EXPECT_FALSE(VoteDecided(AggregationPolicy::kMajorityVote, votes, 1));
  EXPECT_TRUE(VoteDecided(AggregationPolicy::kMajorityVote, votes, 0));  // nothing can change
}

TEST(VoteDecidedTest, WeightedUsesTheWeightBound) {
  const std::vector<Vote> votes = {V("x", 1, 9.0), V("y", 3, 4.0)};
  const auto policy = AggregationPolicy::kWeightedVote;
  EXPECT_TRUE(VoteDecided(policy, votes, 2, 2.4));   // 9 > 4 + 4.8
  EXPECT_FALSE(VoteDecided(policy, votes, 2, 2.5));  // 9 = 4 + 5
  EXPECT_FALSE(VoteDecided(policy, votes, 2, 3.0));
  EXPECT_TRUE(VoteDecided(policy, votes, 10, 0.0));  // remaining branches add nothing
  EXPECT_FALSE(VoteDecided(policy, votes, 1));       // no bound known: +inf
  EXPECT_TRUE(VoteDecided(policy, votes, 0));
}

TEST(VoteDecidedTest, BestLogprobAndNoneWaitForEveryBranch) {
  const std::vector<Vote> votes = {V("x", 100, 100.0)};
  for (AggregationPolicy policy : {AggregationPolicy::kBestLogprob, AggregationPolicy::kNone}) {
    EXPECT_FALSE(VoteDecided(policy, votes, 1, 0.0));
    EXPECT_TRUE(VoteDecided(policy, votes, 0));
  }
}

// The decided answer is the one Aggregate picks whatever the remaining branches vote.
TEST(VoteDecidedTest, AgreesWithAggregateUnderEveryCompletion) {
  const std::vector<BranchOutcome> done = {{0, FinishReason::kEos, "a", 1, 0},
                                           {1, FinishReason::kEos, "b", 1, 0},
                                           {2, FinishReason::kEos, "a", 1, 0},
                                           {3, FinishReason::kEos, "a", 1, 0},
                                           {4, FinishReason::kPruned, "b", 1, 0}};
  const AggregationResult now = Aggregate(AggregationPolicy::kMajorityVote, done);
  for (int remaining = 0; remaining <= 3; ++remaining) {
    const bool decided = VoteDecided(AggregationPolicy::kMajorityVote, now.votes, remaining);
    EXPECT_EQ(decided, remaining <= 1) << remaining;  // a:3 b:1 → safe while 3 > 1 + r
    // Worst case for "a": every remaining branch (lower indices, so they win ties) votes "b".
    std::vector<BranchOutcome> all = done;
    for (int i = 0; i < remaining; ++i) {
      all.push_back({-1 - i, FinishReason::kEos, "b", 1, 0});
    }
    const std::string final_answer = Aggregate(AggregationPolicy::kMajorityVote, all).answer;
    if (decided) {
      EXPECT_EQ(final_answer, "a") << remaining;
    }
  }
}

}  // namespace
}  // namespace rami::aggregation
