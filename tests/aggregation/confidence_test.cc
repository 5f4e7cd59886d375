// DeepConf confidence against hand computations: token confidence with k below, at and above
// the alternatives available, the sliding window before and after it fills (and over many
// laps), the mean chosen log-prob, and the log-prob floor.
#include "coordinator/aggregation/confidence.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace rami::aggregation {
namespace {

constexpr double kTol = 1e-12;

TEST(TokenConfidenceTest, MeanOfTheFirstKAlternatives) {
  const std::vector<float> top = {-0.5f, -1.0f, -2.0f, -4.5f};
  EXPECT_NEAR(TokenConfidence(-0.5f, top, 1), 0.5, kTol);
  EXPECT_NEAR(TokenConfidence(-0.5f, top, 2), 0.75, kTol);       // (0.5 + 1) / 2
  EXPECT_NEAR(TokenConfidence(-0.5f, top, 3), 3.5 / 3.0, kTol);  // (0.5 + 1 + 2) / 3
  EXPECT_NEAR(TokenConfidence(-0.5f, top, 4), 2.0, kTol);        // 8 / 4
  EXPECT_NEAR(TokenConfidence(-0.5f, top, 20), 2.0, kTol);       // only 4 available
  // The chosen token does not enter when alternatives are known (it may be outside them).
  EXPECT_NEAR(TokenConfidence(-9.0f, top, 2), 0.75, kTol);
}

TEST(TokenConfidenceTest, NoAlternativesFallsBackToTheChosenToken) {
  EXPECT_NEAR(TokenConfidence(-0.25f, {}, 5), 0.25, kTol);
  EXPECT_NEAR(TokenConfidence(0.0f, {}, 5), 0.0, kTol);
}

TEST(TokenConfidenceTest, CertainTokenHasZeroAndFlatterIsHigher) {
  const std::vector<float> certain = {0.0f, -100.0f};
  const std::vector<float> uniform = {std::log(0.5f), std::log(0.5f)};
  EXPECT_NEAR(TokenConfidence(0.0f, certain, 1), 0.0, kTol);
  EXPECT_NEAR(TokenConfidence(std::log(0.5f), uniform, 2), -std::log(0.5f), 1e-7);
}

TEST(TokenConfidenceTest, NonFiniteLogprobsAreFloored) {
  const std::vector<float> top = {-1.0f, -INFINITY, NAN, -1e30f};
  EXPECT_NEAR(TokenConfidence(-1.0f, top, 4), (1.0 + 3 * -kLogprobFloor) / 4.0, kTol);
  EXPECT_NEAR(TokenConfidence(-INFINITY, {}, 4), -kLogprobFloor, kTol);
}

TEST(BranchConfidenceTest, EmptyBranchIsZero) {
  BranchConfidence branch(4);
  EXPECT_EQ(branch.tokens(), 0);
  EXPECT_EQ(branch.confidence(), 0.0);
  EXPECT_EQ(branch.mean_logprob(), 0.0);
}

TEST(BranchConfidenceTest, WindowMeanBeforeAndAfterItFills) {
  BranchConfidence branch(3);
  const double c[] = {1.0, 2.0, 4.0, 8.0, 16.0};
  const float lp[] = {-0.5f, -1.0f, -1.5f, -2.0f, -0.0f};
  const double want_conf[] = {1.0, 1.5, 7.0 / 3, 14.0 / 3, 28.0 / 3};  // last ≤ 3 tokens
  const double want_lp[] = {-0.5, -0.75, -1.0, -1.25, -1.0};           // all tokens
  for (int i = 0; i < 5; ++i) {
    branch.AddToken(c[i], lp[i]);
    EXPECT_EQ(branch.tokens(), i + 1);
    EXPECT_NEAR(branch.confidence(), want_conf[i], kTol) << "token " << i;
    EXPECT_NEAR(branch.mean_logprob(), want_lp[i], kTol) << "token " << i;
  }
}

TEST(BranchConfidenceTest, WindowOfOneIsTheLastToken) {
  BranchConfidence branch(1);
  branch.AddToken(3.0, -1.0f);
  branch.AddToken(5.0, -3.0f);
  EXPECT_NEAR(branch.confidence(), 5.0, kTol);
  EXPECT_NEAR(branch.mean_logprob(), -2.0, kTol);
}

// Many laps of the ring against a brute-force mean of the last K values: the running sum
// must not drift.
TEST(BranchConfidenceTest, ManyLapsMatchBruteForce) {
  for (int window : {1, 2, 3, 7, 64}) {
    BranchConfidence branch(window);
    std::vector<double> all;
    double logprob_sum = 0.0;
    for (int i = 0; i < 5000; ++i) {
      // Wildly varying magnitudes make a naive running sum lose precision.
      const double c = (i % 3 == 0) ? 1e6 + i : 0.001 * (i % 17);
      const float lp = -0.01f * static_cast<float>(i % 13);
      branch.AddToken(c, lp);
      all.push_back(c);
      logprob_sum += lp;
      const size_t n = std::min<size_t>(all.size(), window);
      double sum = 0.0;
      for (size_t j = all.size() - n; j < all.size(); ++j) sum += all[j];
      ASSERT_NEAR(branch.confidence(), sum / n, 1e-9 * (1 + sum / n)) << window << " " << i;
    }
    EXPECT_NEAR(branch.mean_logprob(), logprob_sum / 5000, 1e-9);
  }
}

TEST(BranchConfidenceTest, ChosenLogprobIsFloored) {
  BranchConfidence branch(2);
  branch.AddToken(1.0, -INFINITY);
  branch.AddToken(1.0, 0.0f);
  EXPECT_NEAR(branch.mean_logprob(), kLogprobFloor / 2, kTol);
  EXPECT_TRUE(std::isfinite(branch.confidence()));
}

TEST(BranchConfidenceTest, TokenConfidenceFeedsTheWindow) {
  BranchConfidence branch(2);
  const std::vector<float> a = {-1.0f, -3.0f};  // confidence 2
  const std::vector<float> b = {-0.0f, -1.0f};  // confidence 0.5
  branch.AddToken(TokenConfidence(a[0], a, 5), a[0]);
  branch.AddToken(TokenConfidence(b[0], b, 5), b[0]);
  EXPECT_NEAR(branch.confidence(), 1.25, kTol);
  EXPECT_NEAR(branch.mean_logprob(), -0.5, kTol);
}

TEST(BranchConfidenceDeathTest, WindowMustBePositive) {
  EXPECT_DEATH(BranchConfidence(0), "window_tokens");
}

}  // namespace
}  // namespace rami::aggregation
