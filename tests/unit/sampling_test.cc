// Token sampling: the Philox known-answer vectors, reproducible (seed, index) streams, greedy
// ties, empirical distributions against softmax by chi-square (deterministic because the RNG
// is), exact filter sets, raw log-probs against a double-precision reference, and the
// sampler's parameter validation.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/philox.h"
#include "kernels/sampling.h"
#include "worker/engine/sampler.h"

namespace rami {

using engine::Sample;
using engine::SampledToken;
using engine::SampleRequest;

namespace {

using ::testing::HasSubstr;

// Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter[4], key[2] → out[4].
TEST(PhiloxTest, KnownAnswerVectors) {
  struct Kat {
    kernels::PhiloxCounter ctr;
    kernels::PhiloxKey key;
    uint32_t expected[4];
  };
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, {{0, 0}}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       {{0xffffffff, 0xffffffff}},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       {{0xa4093822, 0x299f31d0}},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& kat : kats) {
    const kernels::PhiloxCounter out = kernels::Philox4x32(kat.ctr, kat.key);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out.v[i], kat.expected[i]) << "word " << i;
  }
}

TEST(PhiloxTest, UnitConversionsCoverZeroToBelowOne) {
  EXPECT_EQ(kernels::PhiloxUnitDouble(0, 0), 0.0);
  EXPECT_EQ(kernels::PhiloxUnitDouble(0xffffffff, 0xffffffff), 1.0 - 0x1.0p-53);
  EXPECT_EQ(kernels::PhiloxUnitDouble(0, 0x80000000), 0.5);
  EXPECT_EQ(kernels::PhiloxUnitFloat(0), 0.0f);
  EXPECT_EQ(kernels::PhiloxUnitFloat(0xffffffff), 1.0f - 0x1.0p-24f);
}

// Every field of the stream key matters: both halves of the seed and of the index.
TEST(PhiloxTest, StreamIsKeyedBySeedAndIndex) {
  std::set<double> seen;
  for (uint64_t index = 0; index < 1000; ++index) seen.insert(kernels::SampleUniform(7, index));
  EXPECT_EQ(seen.size(), 1000u);
  const double u = kernels::SampleUniform(7, 0);
  EXPECT_EQ(kernels::SampleUniform(7, 0), u);
  EXPECT_NE(kernels::SampleUniform(8, 0), u);
  EXPECT_NE(kernels::SampleUniform(7 + (1ull << 32), 0), u);
  EXPECT_NE(kernels::SampleUniform(7, 1ull << 32), u);
}

// Draws `draws` tokens from one logits row with the same parameters, token indices
// 0..draws-1 of one seed (one kernel call: every output row reads logits row 0).
std::vector<int> Counts(const std::vector<float>& logits, int draws, float temperature,
                        int top_k = 0, float top_p = 0.0f, float min_p = 0.0f,
                        uint64_t seed = 1234) {
  const int vocab = static_cast<int>(logits.size());
  std::vector<int32_t> row(draws, 0), k(draws, top_k), n(draws, 0), token(draws);
  std::vector<float> t(draws, temperature), p(draws, top_p), mp(draws, min_p), lp(draws);
  std::vector<uint64_t> seeds(draws, seed), index(draws);
  std::iota(index.begin(), index.end(), 0);
  kernels::SampleCpu({.logits = logits.data(),
                      .logits_row = row.data(),
                      .temperature = t.data(),
                      .top_k = k.data(),
                      .top_p = p.data(),
                      .min_p = mp.data(),
                      .seed = seeds.data(),
                      .index = index.data(),
                      .num_logprobs = n.data(),
                      .token = token.data(),
                      .logprob = lp.data(),
                      .rows = draws,
                      .vocab = vocab});
  std::vector<int> counts(vocab, 0);
  for (int32_t id : token) ++counts[id];
  return counts;
}

// softmax(logits / temperature) in double, restricted to `kept` (all when empty), renormalised.
std::vector<double> Softmax(const std::vector<float>& logits, double temperature,
                            const std::set<int>& kept = {}) {
  const double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const bool keep = kept.empty() || kept.count(static_cast<int>(i)) > 0;
    p[i] = keep ? std::exp((logits[i] - max) / temperature) : 0.0;
    sum += p[i];
  }
  for (double& v : p) v /= sum;
  return p;
}

// Pearson's chi-square statistic of `counts` against `probs`; tokens of probability 0 must
// never be drawn. *df receives the degrees of freedom.
double ChiSquare(const std::vector<int>& counts, const std::vector<double>& probs, int* df) {
  const double n = std::accumulate(counts.begin(), counts.end(), 0.0);
  double stat = 0.0;
  *df = -1;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0 but was drawn";
      continue;
    }
    const double expected = n * probs[i];
    stat += (counts[i] - expected) * (counts[i] - expected) / expected;
    ++*df;
  }
  return stat;
}

// Upper 0.1% points of the chi-square distribution, by degrees of freedom 1..5. The draws are
// a fixed function of (seed, index), so a pass is a pass forever; the threshold says how
// unlikely a correct sampler would be to fail with some other seed.
double ChiSquareCritical(int df) {
  static const double kCritical[] = {0.0, 10.828, 13.816, 16.266, 18.467, 20.515};
  return kCritical[df];
}

void ExpectMatches(const std::vector<int>& counts, const std::vector<double>& probs) {
  int df = 0;
  const double stat = ChiSquare(counts, probs, &df);
  ASSERT_GE(df, 1);
  EXPECT_LT(stat, ChiSquareCritical(df)) << "df " << df;
}

const std::vector<float> kToyLogits = {1.0f, 2.0f, 0.5f, -1.0f, 1.5f, 0.0f};
constexpr int kDraws = 20000;

TEST(SamplingTest, EmpiricalDistributionMatchesSoftmax) {
  ExpectMatches(Counts(kToyLogits, kDraws, 1.0f), Softmax(kToyLogits, 1.0));
}

TEST(SamplingTest, TemperatureScalesTheDistribution) {
  for (double t : {0.5, 2.0}) {
    SCOPED_TRACE(t);
    const std::vector<int> counts = Counts(kToyLogits, kDraws, static_cast<float>(t));
    ExpectMatches(counts, Softmax(kToyLogits, t));
    // The test has power: the same counts are far from the temperature-1 distribution.
    int df = 0;
    EXPECT_GT(ChiSquare(counts, Softmax(kToyLogits, 1.0), &df), 10 * ChiSquareCritical(df));
  }
}

// Logits whose softmax is `probs`, with the ids permuted so that id order is not the
// probability order.
std::vector<float> LogitsOf(const std::vector<double>& probs, const std::vector<int>& ids) {
  std::vector<float> logits(probs.size());
  for (size_t i = 0; i < probs.size(); ++i) logits[ids[i]] = static_cast<float>(std::log(probs[i]));
  return logits;
}

// Every token of `kept` is drawn and nothing else is, and the counts follow the renormalised
// softmax over `kept`.
void ExpectKeeps(const std::vector<int>& counts, const std::vector<float>& logits,
                 double temperature, const std::set<int>& kept) {
  for (size_t i = 0; i < counts.size(); ++i) {
    if (kept.count(static_cast<int>(i))) {
      EXPECT_GT(counts[i], 0) << "kept token " << i << " never drawn";
    } else {
      EXPECT_EQ(counts[i], 0) << "cut token " << i << " drawn";
    }
  }
  if (kept.size() > 1) ExpectMatches(counts, Softmax(logits, temperature, kept));
}

// probs 0.4, 0.3, 0.15, 0.1, 0.05 at ids 3, 0, 4, 1, 2.
const std::vector<int> kIds = {3, 0, 4, 1, 2};
const std::vector<float> kFive = LogitsOf({0.4, 0.3, 0.15, 0.1, 0.05}, kIds);

TEST(SamplingTest, TopKKeepsTheKMostLikely) {
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, /*top_k=*/2), kFive, 1.0, {3, 0});
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, /*top_k=*/4), kFive, 1.0, {3, 0, 4, 1});
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, /*top_k=*/5), kFive, 1.0, {3, 0, 4, 1, 2});
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, /*top_k=*/100), kFive, 1.0, {3, 0, 4, 1, 2});
  // Exactly k on a tie at the boundary: the lower id wins.
  const std::vector<float> tied = {0.0f, 2.0f, 1.0f, 2.0f, 1.0f};
  ExpectKeeps(Counts(tied, kDraws, 1.0f, /*top_k=*/3), tied, 1.0, {1, 3, 2});
}

TEST(SamplingTest, TopPKeepsTheShortestPrefixReachingP) {
  // Cumulative 0.4, 0.7, 0.85, 0.95, 1.
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, 0, /*top_p=*/0.3f), kFive, 1.0, {3});
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, 0, /*top_p=*/0.6f), kFive, 1.0, {3, 0});
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, 0, /*top_p=*/0.8f), kFive, 1.0, {3, 0, 4});
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, 0, /*top_p=*/0.9f), kFive, 1.0, {3, 0, 4, 1});
  // 1 is off, as 0 is.
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, 0, /*top_p=*/1.0f), kFive, 1.0, {3, 0, 4, 1, 2});
  // Top-p sees the top-k set renormalised: top-3 mass 0.85, 0.8 of it is 0.68 → {3, 0}
  // (without the renormalisation it would keep three tokens).
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, /*top_k=*/3, /*top_p=*/0.8f), kFive, 1.0, {3, 0});
}

TEST(SamplingTest, MinPKeepsTokensWithinAFactorOfTheBest) {
  // Thresholds 0.4 · min_p: 0.16 keeps 0.4, 0.3; 0.06 keeps down to 0.1.
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, 0, 0.0f, /*min_p=*/0.4f), kFive, 1.0, {3, 0});
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, 0, 0.0f, /*min_p=*/0.15f), kFive, 1.0, {3, 0, 4, 1});
  ExpectKeeps(Counts(kFive, kDraws, 1.0f, 0, 0.0f, /*min_p=*/1.0f), kFive, 1.0, {3});
  // On the temperature-scaled distribution: at T = 2 the ratios are sqrt(p / 0.4) = 1,
  // 0.87, 0.61, 0.5, 0.35, so min_p 0.55 keeps three tokens.
  ExpectKeeps(Counts(kFive, kDraws, 2.0f, 0, 0.0f, /*min_p=*/0.55f), kFive, 2.0, {3, 0, 4});
}

// Filters apply top-k, top-p, then min-p (vLLM: min-p first; see kernels/sampling.h). With
// probs 0.3, 0.3, 0.1 ×4 and min_p 0.9 the min-p set is the two 0.3s; top_p 0.45 over the
// whole distribution also keeps both, while over the min-p set (vLLM) it keeps one.
TEST(SamplingTest, FiltersApplyTopKThenTopPThenMinP) {
  const std::vector<float> logits = LogitsOf({0.3, 0.3, 0.1, 0.1, 0.1, 0.1}, {0, 1, 2, 3, 4, 5});
  ExpectKeeps(Counts(logits, kDraws, 1.0f, 0, /*top_p=*/0.45f, /*min_p=*/0.9f), logits, 1.0,
              {0, 1});
  ExpectKeeps(Counts(logits, kDraws, 1.0f, /*top_k=*/4, 0.45f, /*min_p=*/0.2f), logits, 1.0,
              {0, 1});
}

TEST(SamplingTest, MaskedTokensAreNeverDrawn) {
  const float kNegInf = -INFINITY;
  const std::vector<float> logits = {kNegInf, 0.0f, kNegInf, 0.0f, kNegInf};
  ExpectKeeps(Counts(logits, kDraws, 1.0f), logits, 1.0, {1, 3});
  ExpectKeeps(Counts(logits, kDraws, 1.0f, /*top_k=*/4), logits, 1.0, {1, 3});
}

// A row without a distribution (a NaN or +Inf logit, or no finite one) is flagged, greedy or
// drawing: token -1, logprob NaN, no top-n; the good row beside it is sampled as usual.
TEST(SamplingTest, KernelFlagsRowsWithoutADistribution) {
  const std::vector<std::vector<float>> broken = {{NAN, 1.0f, NAN, 0.0f},
                                                  {0.0f, INFINITY, 1.0f, 2.0f},
                                                  {-INFINITY, -INFINITY, -INFINITY, -INFINITY}};
  for (const std::vector<float>& row : broken) {
    for (float temperature : {0.0f, 1.0f}) {
      std::vector<float> logits = row;
      logits.insert(logits.end(), {0.0f, 5.0f, 0.0f, 0.0f});  // row 1: a good one
      std::vector<int32_t> rows = {0, 1}, k = {0, 0}, n = {2, 2}, token(2), top_ids(4);
      std::vector<float> t = {temperature, temperature}, p = {0, 0}, mp = {0, 0}, lp(2), top(4);
      std::vector<uint64_t> seeds = {1, 1}, index = {0, 0};
      kernels::SampleCpu({.logits = logits.data(),
                          .logits_row = rows.data(),
                          .temperature = t.data(),
                          .top_k = k.data(),
                          .top_p = p.data(),
                          .min_p = mp.data(),
                          .seed = seeds.data(),
                          .index = index.data(),
                          .num_logprobs = n.data(),
                          .token = token.data(),
                          .logprob = lp.data(),
                          .top_ids = top_ids.data(),
                          .top_logprobs = top.data(),
                          .rows = 2,
                          .vocab = 4,
                          .max_logprobs = 2});
      EXPECT_EQ(token[0], -1);
      EXPECT_TRUE(std::isnan(lp[0]));
      EXPECT_EQ(top_ids[0], -1);
      EXPECT_EQ(top_ids[1], -1);
      EXPECT_EQ(top[0], -INFINITY);
      if (temperature == 0.0f) EXPECT_EQ(token[1], 1);
      EXPECT_GE(token[1], 0);
      EXPECT_EQ(top_ids[2], 1);
    }
  }
}

TEST(SamplingTest, GreedyTakesTheLowestIdOfTheMaxima) {
  const std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f, 3.0f};
  EXPECT_EQ(Counts(logits, 100, 0.0f)[1], 100);
  // top_k 1 is greedy at any temperature, and greedy ignores the seed.
  EXPECT_EQ(Counts(logits, 100, 5.0f, /*top_k=*/1, 0.0f, 0.0f, /*seed=*/99)[1], 100);
}

// All logits equal: the canonical order is id order and the mass of the first j + 1 tokens
// is exactly j + 1, so the draw is exactly floor(u · vocab). Also walks a whole real-size
// vocabulary (the lazily sorted canonical order grows to the end).
TEST(SamplingTest, FlatDistributionIsTheInverseCdfInIdOrder) {
  constexpr int kVocab = 151936;
  const std::vector<float> logits(kVocab, 0.25f);
  for (uint64_t index : {0, 1, 2, 3}) {
    const std::vector<SampleRequest> requests = {
        {.index = index, .params = {.temperature = 0.8f, .seed = 42}}};
    absl::StatusOr<std::vector<SampledToken>> out = Sample(logits, kVocab, requests);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0].token_id,
              static_cast<int32_t>(std::floor(kernels::SampleUniform(42, index) * kVocab)));
  }
}

std::vector<float> RandomLogits(int rows, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  for (float& x : logits) x = normal(rng);
  return logits;
}

// Same (seed, index) → the same token whatever else is in the batch and wherever the row
// sits in it; another index or seed → another stream.
TEST(SamplingTest, StreamsAreReproducibleAndIndependentOfTheBatch) {
  constexpr int kRows = 16, kVocab = 512;
  const std::vector<float> logits = RandomLogits(kRows, kVocab, 5);
  std::vector<SampleRequest> requests(kRows);
  for (int r = 0; r < kRows; ++r) {
    requests[r] = {.row = r,
                   .index = static_cast<uint64_t>(3 * r),
                   .params = {.temperature = 1.0f, .top_k = 50, .top_p = 0.95f, .seed = 1000u + r}};
  }
  absl::StatusOr<std::vector<SampledToken>> first = Sample(logits, kVocab, requests);
  absl::StatusOr<std::vector<SampledToken>> again = Sample(logits, kVocab, requests);
  ASSERT_TRUE(first.ok() && again.ok());
  std::vector<SampleRequest> reversed(requests.rbegin(), requests.rend());
  absl::StatusOr<std::vector<SampledToken>> backwards = Sample(logits, kVocab, reversed);
  ASSERT_TRUE(backwards.ok());
  for (int r = 0; r < kRows; ++r) {
    EXPECT_EQ((*first)[r].token_id, (*again)[r].token_id);
    EXPECT_EQ((*first)[r].token_id, (*backwards)[kRows - 1 - r].token_id);
    absl::StatusOr<std::vector<SampledToken>> alone = Sample(logits, kVocab, {requests[r]});
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ((*first)[r].token_id, (*alone)[0].token_id);
  }

  // One sequence, 200 tokens from the same logits row: other indices give another sequence
  // of draws, and so does another seed.
  auto draws = [&](uint64_t seed, uint64_t first_index) {
    std::vector<SampleRequest> stream(200);
    for (int i = 0; i < 200; ++i) {
      stream[i] = {
          .row = 0, .index = first_index + i, .params = {.temperature = 1.5f, .seed = seed}};
    }
    absl::StatusOr<std::vector<SampledToken>> out = Sample(logits, kVocab, stream);
    EXPECT_TRUE(out.ok());
    std::vector<int32_t> tokens;
    for (const SampledToken& t : *out) tokens.push_back(t.token_id);
    return tokens;
  };
  const std::vector<int32_t> base = draws(77, 0);
  EXPECT_EQ(draws(77, 0), base);
  EXPECT_NE(draws(77, 200), base);
  EXPECT_NE(draws(78, 0), base);
  EXPECT_GT(std::set<int32_t>(base.begin(), base.end()).size(), 20u);
}

// Log-probs are the raw log_softmax(logits) whatever the sampling knobs; the top-n list is
// the n best in logit order, ties by id.
TEST(SamplingTest, LogprobsAreRawLogSoftmaxAndTopNIsSorted) {
  constexpr int kRows = 3, kVocab = 1000;
  std::vector<float> logits = RandomLogits(kRows, kVocab, 9);
  // Ties in the top: two copies of row 0's best value, at a lower and a higher id.
  const int best =
      static_cast<int>(std::max_element(logits.begin(), logits.begin() + kVocab) - logits.begin());
  ASSERT_TRUE(best != 0 && best != kVocab - 1);
  logits[0] = logits[best];
  logits[kVocab - 1] = logits[best];
  const std::vector<SampleRequest> requests = {
      {.row = 0, .params = {.temperature = 0.0f, .logprobs = 20}},
      {.row = 1,
       .params = {.temperature = 0.7f, .top_k = 5, .min_p = 0.1f, .seed = 3, .logprobs = 7}},
      {.row = 2,
       .index = 11,
       .params = {.temperature = 1.3f, .top_p = 0.9f, .seed = 4, .logprobs = 0}},
      {.row = 0, .params = {.temperature = 1.0f, .seed = 5, .logprobs = 1}},
  };
  absl::StatusOr<std::vector<SampledToken>> out = Sample(logits, kVocab, requests);
  ASSERT_TRUE(out.ok()) << out.status();
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(i);
    const float* x = logits.data() + static_cast<size_t>(requests[i].row) * kVocab;
    double max = x[0], sum = 0.0;
    for (int c = 0; c < kVocab; ++c) max = std::max(max, static_cast<double>(x[c]));
    for (int c = 0; c < kVocab; ++c) sum += std::exp(x[c] - max);
    auto ref = [&](int id) { return x[id] - max - std::log(sum); };
    std::vector<int> order(kVocab);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return x[a] > x[b]; });

    const SampledToken& t = (*out)[i];
    EXPECT_NEAR(t.logprob, ref(t.token_id), 1e-5);
    ASSERT_EQ(t.top.size(), static_cast<size_t>(requests[i].params.logprobs));
    for (size_t j = 0; j < t.top.size(); ++j) {
      EXPECT_EQ(t.top[j].token_id, order[j]) << "rank " << j;
      EXPECT_NEAR(t.top[j].logprob, ref(order[j]), 1e-5) << "rank " << j;
    }
  }
  // Greedy on row 0 takes the lowest id of the tied maxima, which heads the top list.
  EXPECT_EQ((*out)[0].token_id, 0);
  EXPECT_EQ((*out)[0].top[1].token_id, std::min(best, kVocab - 1));
  EXPECT_EQ((*out)[0].top[2].token_id, std::max(best, kVocab - 1));
}

TEST(SamplingTest, TopNIsCutAtTheVocabulary) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  absl::StatusOr<std::vector<SampledToken>> out =
      Sample(logits, 3, {{.params = {.temperature = 1.0f, .logprobs = 20}}});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ((*out)[0].top.size(), 3u);
  EXPECT_EQ((*out)[0].top[0].token_id, 2);
  EXPECT_EQ((*out)[0].top[2].token_id, 0);
}

TEST(SamplerValidationTest, NamesTheFieldAndTheLimit) {
  struct Case {
    SamplingParams params;
    std::string message;
  };
  const Case cases[] = {
      {{.temperature = -0.5f}, "temperature: must be finite and >= 0"},
      {{.temperature = INFINITY}, "temperature: must be finite and >= 0"},
      {{.temperature = NAN}, "temperature: must be finite and >= 0"},
      {{.top_k = -1}, "top_k: must be >= 0"},
      {{.top_p = 1.5f}, "top_p: must be in (0, 1]"},
      {{.top_p = -0.1f}, "top_p: must be in (0, 1]"},
      {{.top_p = NAN}, "top_p: must be in (0, 1]"},
      {{.top_p = 0.0f}, "top_p: must be in (0, 1], got 0"},  // 1 is the only "off"
      {{.min_p = 2.0f}, "min_p: must be in [0, 1]"},
      {{.min_p = -1.0f}, "min_p: must be in [0, 1]"},
      {{.logprobs = 21}, "logprobs: must be in [0, 20]"},
      {{.logprobs = -1}, "logprobs: must be in [0, 20]"},
  };
  const std::vector<float> logits = {0.0f, 1.0f};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    EXPECT_EQ(ValidateSamplingParams(c.params).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(ValidateSamplingParams(c.params).message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(ValidateSamplingParams(c.params, "sampling.").message()),
                HasSubstr("sampling." + c.message));
    // Through Sample, the failing request is named too.
    absl::StatusOr<std::vector<SampledToken>> out =
        Sample(logits, 2, {SampleRequest{}, SampleRequest{.params = c.params}});
    ASSERT_FALSE(out.ok());
    EXPECT_THAT(std::string(out.status().message()), HasSubstr("sampling request 1: "));
    EXPECT_THAT(std::string(out.status().message()), HasSubstr(c.message));
  }
  EXPECT_TRUE(ValidateSamplingParams(
                  {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 1.0f, .logprobs = 20})
                  .ok());
  EXPECT_TRUE(ValidateSamplingParams({.top_p = 1e-6f, .min_p = 0.0f, .logprobs = 0}).ok());
}

TEST(SamplerValidationTest, RejectsMissingRowsAndFlagsBrokenLogits) {
  auto message = [](const std::vector<float>& logits, int vocab, const SampleRequest& request) {
    absl::StatusOr<std::vector<SampledToken>> out = Sample(logits, vocab, {request});
    EXPECT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(out.status().message());
  };
  const std::vector<float> two_rows = {0.0f, 1.0f, 2.0f, 3.0f};
  EXPECT_THAT(message(two_rows, 2, {.row = 2}), HasSubstr("row 2 is outside the 2 logits rows"));
  EXPECT_THAT(message(two_rows, 2, {.row = -1}), HasSubstr("row -1 is outside"));
  EXPECT_THAT(message(two_rows, 3, {}), HasSubstr("not whole rows of vocab_size 3"));
  EXPECT_THAT(message(two_rows, 0, {}), HasSubstr("vocab_size 0"));
  // A broken row fails its own token only, with the reason; the other request is sampled.
  auto flagged = [](const std::vector<float>& bad_row) {
    std::vector<float> logits = bad_row;
    logits.insert(logits.end(), {0.0f, 1.0f});
    absl::StatusOr<std::vector<SampledToken>> out =
        Sample(logits, 2, {SampleRequest{.row = 0}, SampleRequest{.row = 1}});
    EXPECT_TRUE(out.ok()) << out.status();
    EXPECT_EQ((*out)[0].status.code(), absl::StatusCode::kInternal);
    EXPECT_TRUE((*out)[1].status.ok());
    EXPECT_EQ((*out)[1].token_id, 1);
    return std::string((*out)[0].status.message());
  };
  EXPECT_THAT(flagged({0.0f, NAN}), HasSubstr("token 1 has a non-finite logit nan"));
  EXPECT_THAT(flagged({INFINITY, 0.0f}), HasSubstr("token 0 has a non-finite"));
  EXPECT_THAT(flagged({-INFINITY, -INFINITY}), HasSubstr("every logit is -inf"));
  // An empty batch is fine.
  absl::StatusOr<std::vector<SampledToken>> none = Sample(two_rows, 2, {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace rami
