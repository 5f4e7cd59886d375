// CPU kernels against brute-force fp64 references written out from their definitions, over
// awkward sizes.
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/log_softmax.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "tests/testing/compare.h"

namespace rami {
namespace {

using testing::AllClose;

std::vector<float> Random(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(LinearCpu, MatchesDoubleLoops) {
  std::mt19937 rng(1);
  for (int m : {1, 3, 17}) {
    for (int n : {1, 5, 129}) {
      for (int k : {1, 16, 33}) {
        const std::vector<float> x = Random(m * k, rng), w = Random(n * k, rng),
                                 bias = Random(n, rng);
        std::vector<float> y(m * n), ref(m * n);
        kernels::LinearCpu({.x = x.data(),
                            .w = w.data(),
                            .bias = bias.data(),
                            .y = y.data(),
                            .m = m,
                            .n = n,
                            .k = k});
        for (int i = 0; i < m; ++i) {
          for (int j = 0; j < n; ++j) {
            double acc = bias[j];
            for (int c = 0; c < k; ++c) acc += static_cast<double>(x[i * k + c]) * w[j * k + c];
            ref[i * n + j] = static_cast<float>(acc);
          }
        }
        EXPECT_TRUE(AllClose(y, ref, {.atol = 1e-5, .rtol = 1e-5}));
      }
    }
  }
}

TEST(RmsNormCpu, ResidualFusedEqualsAddThenNorm) {
  std::mt19937 rng(2);
  for (int cols : {1, 3, 17, 129}) {
    const int rows = 5;
    const std::vector<float> x = Random(rows * cols, rng), res = Random(rows * cols, rng),
                             w = Random(cols, rng);
    std::vector<float> fused_res = res, fused_out(rows * cols);
    kernels::RmsNormCpu({.x = x.data(),
                         .residual = fused_res.data(),
                         .weight = w.data(),
                         .out = fused_out.data(),
                         .rows = rows,
                         .cols = cols,
                         .eps = 1e-6f});
    std::vector<float> sum(rows * cols), ref(rows * cols);
    for (int r = 0; r < rows; ++r) {
      double ss = 0;
      for (int c = 0; c < cols; ++c) {
        sum[r * cols + c] = x[r * cols + c] + res[r * cols + c];
        ss += static_cast<double>(sum[r * cols + c]) * sum[r * cols + c];
      }
      const double inv = 1.0 / std::sqrt(ss / cols + 1e-6);
      for (int c = 0; c < cols; ++c)
        ref[r * cols + c] = static_cast<float>(w[c] * sum[r * cols + c] * inv);
    }
    EXPECT_TRUE(AllClose(fused_res, sum, {.bitwise = true}, "residual"));
    EXPECT_TRUE(AllClose(fused_out, ref, {.atol = 1e-6, .rtol = 1e-5}, "output"));
  }
}

TEST(RopeCpu, RotatesHalvesByPositionTimesFrequency) {
  std::mt19937 rng(3);
  const int tokens = 4, heads = 3, dim = 8;
  const std::vector<float> x = Random(tokens * heads * dim, rng);
  const std::vector<int32_t> positions = {0, 1, 7, 1000};
  const std::vector<float> inv_freq = {1.0f, 0.1f, 0.01f, 0.001f};
  std::vector<float> y = x;
  kernels::RopeCpu({.x = y.data(),
                    .positions = positions.data(),
                    .inv_freq = inv_freq.data(),
                    .num_tokens = tokens,
                    .num_heads = heads,
                    .head_dim = dim,
                    .attention_scale = 1.5f});
  std::vector<float> ref(x.size());
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h) {
      const float* in = &x[(t * heads + h) * dim];
      float* out = &ref[(t * heads + h) * dim];
      for (int i = 0; i < dim / 2; ++i) {
        const double a = static_cast<double>(positions[t]) * inv_freq[i];
        out[i] = static_cast<float>(1.5 * (in[i] * std::cos(a) - in[i + dim / 2] * std::sin(a)));
        out[i + dim / 2] =
            static_cast<float>(1.5 * (in[i + dim / 2] * std::cos(a) + in[i] * std::sin(a)));
      }
    }
  }
  // The kernel forms the angle in float32 (as transformers does): at position 1000 that
  // moves the angle by up to ~3e-5 rad.
  EXPECT_TRUE(AllClose(y, ref, {.atol = 2e-4, .rtol = 1e-4}));
  std::vector<float> scaled(heads * dim);  // position 0: cos = 1, sin = 0
  for (int i = 0; i < heads * dim; ++i) scaled[i] = 1.5f * x[i];
  EXPECT_TRUE(AllClose({y.data(), scaled.size()}, scaled, {.atol = 1e-6}, "position 0"));
}

TEST(SwigluCpu, SiluOfGateTimesUp) {
  std::mt19937 rng(4);
  const int rows = 3, cols = 17;
  const std::vector<float> gu = Random(rows * 2 * cols, rng, 3.0f);
  std::vector<float> out(rows * cols), ref(rows * cols);
  kernels::SwigluCpu({.gate_up = gu.data(), .out = out.data(), .rows = rows, .cols = cols});
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const double g = gu[r * 2 * cols + c], u = gu[r * 2 * cols + cols + c];
      ref[r * cols + c] = static_cast<float>(g / (1 + std::exp(-g)) * u);
    }
  }
  EXPECT_TRUE(AllClose(out, ref, {.atol = 1e-6, .rtol = 1e-5}));
}

TEST(LogSoftmaxCpu, NormalisesAndKeepsDifferences) {
  std::mt19937 rng(5);
  for (int cols : {1, 3, 257}) {
    const std::vector<float> x = Random(2 * cols, rng, 10.0f);
    std::vector<float> y(x.size());
    kernels::LogSoftmaxCpu({.logits = x.data(), .out = y.data(), .rows = 2, .cols = cols});
    for (int r = 0; r < 2; ++r) {
      double total = 0;
      for (int c = 0; c < cols; ++c) total += std::exp(static_cast<double>(y[r * cols + c]));
      EXPECT_NEAR(total, 1.0, 1e-5);
      EXPECT_NEAR(y[r * cols] - y[r * cols + cols - 1], x[r * cols] - x[r * cols + cols - 1], 1e-4);
    }
  }
}

TEST(EmbeddingCpu, VocabShardsSumToFullTable) {
  std::mt19937 rng(6);
  const int vocab = 10, hidden = 3;
  const std::vector<float> table = Random(vocab * hidden, rng);
  const std::vector<int32_t> tokens = {0, 4, 5, 9, 5};
  std::vector<float> full(tokens.size() * hidden), sum(full.size(), 0.0f), part(full.size());
  kernels::EmbeddingCpu({.tokens = tokens.data(),
                         .table = table.data(),
                         .out = full.data(),
                         .num_tokens = 5,
                         .hidden = hidden,
                         .vocab_start = 0,
                         .vocab_local = vocab});
  for (int rank = 0; rank < 2; ++rank) {
    kernels::EmbeddingCpu({.tokens = tokens.data(),
                           .table = table.data() + rank * 5 * hidden,
                           .out = part.data(),
                           .num_tokens = 5,
                           .hidden = hidden,
                           .vocab_start = rank * 5,
                           .vocab_local = 5});
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += part[i];
  }
  EXPECT_TRUE(AllClose(sum, full, {.bitwise = true}));
  EXPECT_EQ(full[3 * hidden], table[9 * hidden]);
}

}  // namespace
}  // namespace rami
