// Aggregate on hand-made tables: each policy, ties to the lower first branch, empty answers
// that never win unless nothing else exists, pruned and aborted branches that do not vote,
// and independence from the order branches finished in.
#include "coordinator/aggregation/aggregator.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rami::aggregation {
namespace {

using P = AggregationPolicy;
using R = FinishReason;

BranchOutcome B(int branch, std::string answer, double confidence = 1.0, double mean_logprob = -1.0,
                R reason = R::kEos) {
  return {branch, reason, std::move(answer), confidence, mean_logprob};
}

// "answer:count:weight" per entry, in table order, for compact expectations.
std::string Table(const AggregationResult& result) {
  std::string out;
  for (const Vote& v : result.votes) {
    out += (out.empty() ? "" : " ") + v.answer + ":" + std::to_string(v.count) + ":" +
           std::to_string(static_cast<int>(std::lround(v.weight * 10)));
  }
  return out;
}

TEST(VotesTest, PrunedAndAbortedDoNotVote) {
  EXPECT_TRUE(Votes(R::kEos));
  EXPECT_TRUE(Votes(R::kStopString));
  EXPECT_TRUE(Votes(R::kStopToken));
  EXPECT_TRUE(Votes(R::kMaxTokens));
  EXPECT_FALSE(Votes(R::kAborted));
  EXPECT_FALSE(Votes(R::kPruned));
}

TEST(AggregateTest, MajorityVote) {
  const std::vector<BranchOutcome> branches = {B(0, "3", 0.5), B(1, "5", 2.0), B(2, "3", 0.5),
                                               B(3, "7", 9.0), B(4, "3", 0.5), B(5, "5", 2.0)};
  const AggregationResult r = Aggregate(P::kMajorityVote, branches);
  EXPECT_EQ(r.answer, "3");
  EXPECT_EQ(Table(r), "3:3:15 5:2:40 7:1:90");
  EXPECT_EQ(r.votes[0].first_branch, 0);
  EXPECT_EQ(r.votes[1].first_branch, 1);
  EXPECT_EQ(r.votes[2].first_branch, 3);
}

TEST(AggregateTest, WeightedVoteSumsConfidences) {
  const std::vector<BranchOutcome> branches = {B(0, "3", 0.5), B(1, "5", 2.0), B(2, "3", 0.5),
                                               B(3, "7", 3.5), B(4, "3", 0.5), B(5, "5", 2.0)};
  const AggregationResult r = Aggregate(P::kWeightedVote, branches);
  EXPECT_EQ(r.answer, "5");  // 4.0 beats 3.5 and 1.5 although "3" has most branches
  EXPECT_EQ(Table(r), "5:2:40 7:1:35 3:3:15");
}

TEST(AggregateTest, BestLogprobTakesTheSingleBestBranch) {
  const std::vector<BranchOutcome> branches = {B(0, "3", 1, -0.9), B(1, "5", 1, -0.2),
                                               B(2, "3", 1, -0.3), B(3, "7", 1, -0.25)};
  const AggregationResult r = Aggregate(P::kBestLogprob, branches);
  EXPECT_EQ(r.answer, "5");
  EXPECT_EQ(Table(r), "3:2:20 5:1:10 7:1:10");  // the table is still by count
}

TEST(AggregateTest, NoneGivesNoAnswerButStillCounts) {
  const std::vector<BranchOutcome> branches = {B(0, "3"), B(1, "3"), B(2, "4")};
  const AggregationResult r = Aggregate(P::kNone, branches);
  EXPECT_EQ(r.answer, "");
  EXPECT_EQ(Table(r), "3:2:20 4:1:10");
}

TEST(AggregateTest, TiesGoToTheEarlierFirstBranch) {
  // "b" first appears at branch 1, "a" at branch 2: "b" wins the tie in count and weight.
  const std::vector<BranchOutcome> branches = {B(5, "a", 1.5), B(1, "b", 1.0), B(2, "a", 1.5),
                                               B(3, "b", 2.0)};
  EXPECT_EQ(Aggregate(P::kMajorityVote, branches).answer, "b");
  const AggregationResult w = Aggregate(P::kWeightedVote, branches);
  EXPECT_EQ(w.answer, "b");
  EXPECT_EQ(Table(w), "b:2:30 a:2:30");
  // Equal mean log-probs: the lower branch.
  const std::vector<BranchOutcome> same = {B(4, "x", 1, -0.5), B(2, "y", 1, -0.5),
                                           B(3, "z", 1, -0.7)};
  EXPECT_EQ(Aggregate(P::kBestLogprob, same).answer, "y");
}

TEST(AggregateTest, EmptyAnswersNeverWinAndListLast) {
  // Four branches without an answer outnumber, outweigh and out-logprob the one with.
  const std::vector<BranchOutcome> branches = {B(0, "", 5.0, -0.1), B(1, "", 5.0, -0.1),
                                               B(2, "9", 0.1, -3.0), B(3, "", 5.0, -0.1),
                                               B(4, "", 5.0, -0.1)};
  for (P policy : {P::kMajorityVote, P::kWeightedVote, P::kBestLogprob}) {
    const AggregationResult r = Aggregate(policy, branches);
    EXPECT_EQ(r.answer, "9");
    EXPECT_EQ(Table(r), "9:1:1 :4:200");
  }
}

TEST(AggregateTest, OnlyEmptyAnswersGiveEmpty) {
  const std::vector<BranchOutcome> branches = {B(0, ""), B(1, "")};
  for (P policy : {P::kMajorityVote, P::kWeightedVote, P::kBestLogprob}) {
    const AggregationResult r = Aggregate(policy, branches);
    EXPECT_EQ(r.answer, "");
    EXPECT_EQ(Table(r), ":2:20");
  }
}

TEST(AggregateTest, NoBranchesGiveNothing) {
  for (P policy : {P::kNone, P::kMajorityVote, P::kWeightedVote, P::kBestLogprob}) {
    const AggregationResult r = Aggregate(policy, {});
    EXPECT_EQ(r.answer, "");
    EXPECT_TRUE(r.votes.empty());
  }
}

TEST(AggregateTest, PrunedAndAbortedBranchesDoNotVote) {
  const std::vector<BranchOutcome> branches = {
      B(0, "1", 1, -0.1, R::kPruned), B(1, "1", 1, -0.1, R::kAborted),
      B(2, "1", 1, -0.1, R::kPruned), B(3, "2", 1, -0.9, R::kMaxTokens),
      B(4, "3", 1, -0.8, R::kStopString)};
  EXPECT_EQ(Aggregate(P::kMajorityVote, branches).answer, "2");  // tie 2/3: branch 3 first
  EXPECT_EQ(Aggregate(P::kBestLogprob, branches).answer, "3");
  EXPECT_EQ(Table(Aggregate(P::kWeightedVote, branches)), "2:1:10 3:1:10");
  // Nobody left to vote.
  const std::vector<BranchOutcome> gone = {B(0, "1", 1, 0, R::kPruned)};
  EXPECT_EQ(Aggregate(P::kMajorityVote, gone).answer, "");
  EXPECT_TRUE(Aggregate(P::kMajorityVote, gone).votes.empty());
}

TEST(AggregateTest, NaNScoresNeverBeatRealOnes) {
  const std::vector<BranchOutcome> branches = {B(0, "nan", NAN, NAN), B(1, "ok", 0.1, -5.0)};
  EXPECT_EQ(Aggregate(P::kWeightedVote, branches).answer, "ok");
  EXPECT_EQ(Aggregate(P::kBestLogprob, branches).answer, "ok");
}

TEST(AggregateTest, ResultDoesNotDependOnFinishOrder) {
  // 1 + 1 + 1e16 = 1e16 + 2 but 1e16 + 1 + 1 = 1e16 (round half to even): summed in finish
  // order, "a" would tie "b" or lose to it depending on the order.
  std::vector<BranchOutcome> branches = {B(0, "a", 1.0), B(1, "b", 1e16 + 2), B(2, "a", 1.0),
                                         B(3, "c", 0.7), B(4, "a", 1e16),     B(5, "", 3.0),
                                         B(6, "c", 0.5)};
  const AggregationResult want = Aggregate(P::kWeightedVote, branches);
  EXPECT_EQ(want.answer, "a");  // ties "b" at 1e16 + 2 and appeared first
  std::sort(branches.begin(), branches.end(),
            [](const BranchOutcome& x, const BranchOutcome& y) { return x.branch < y.branch; });
  do {
    const AggregationResult got = Aggregate(P::kWeightedVote, branches);
    ASSERT_EQ(got.answer, want.answer);
    ASSERT_EQ(got.votes.size(), want.votes.size());
    for (size_t i = 0; i < got.votes.size(); ++i) {
      ASSERT_EQ(got.votes[i].answer, want.votes[i].answer);
      ASSERT_EQ(got.votes[i].weight, want.votes[i].weight);  // bitwise
      ASSERT_EQ(got.votes[i].first_branch, want.votes[i].first_branch);
    }
  } while (std::next_permutation(
      branches.begin(), branches.end(),
      [](const BranchOutcome& x, const BranchOutcome& y) { return x.branch < y.branch; }));
}

}  // namespace
}  // namespace rami::aggregation
