// CPU kernels against brute-force fp64 references written out from their definitions, over
// awkward sizes.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/bias_add.h"
#include "kernels/dms_decision.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/log_softmax.h"
#include "kernels/logits_gather.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "kernels/table_scatter.h"
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

TEST(BiasAddCpu, AddsTheBiasToEveryRow) {
  std::mt19937 rng(41);
  for (int rows : {1, 3, 17}) {
    for (int cols : {1, 7, 129}) {
      std::vector<float> y = Random(static_cast<size_t>(rows) * cols, rng);
      const std::vector<float> bias = Random(cols, rng);
      std::vector<float> want = y;
      for (int r = 0; r < rows; ++r) {
        for (int c = 0; c < cols; ++c) want[static_cast<size_t>(r) * cols + c] += bias[c];
      }
      kernels::BiasAddCpu({.y = y.data(), .bias = bias.data(), .rows = rows, .cols = cols});
      EXPECT_EQ(y, want);
    }
  }
}

// out[k, v] = in[rank(v)][rows[k]][v − rank(v)·vocab_local], written out from the definition;
// padding columns past `vocab` are never read into the output.
TEST(LogitsGatherCpu, LaysOutEachRanksSliceAndDropsThePadding) {
  for (int world : {1, 2, 3, 4}) {
    for (int vocab : {1, 5, 97}) {
      const int vocab_local = (vocab + world - 1) / world;
      const int rows_per_rank = 3;
      std::vector<float> in(static_cast<size_t>(world) * rows_per_rank * vocab_local);
      for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);  // self-describing
      const std::vector<int32_t> rows = {2, 0, 2};
      std::vector<float> out(rows.size() * vocab, -1.0f);
      kernels::LogitsGatherCpu({.in = in.data(),
                                .rows = rows.data(),
                                .out = out.data(),
                                .num_rows = 3,
                                .rows_per_rank = rows_per_rank,
                                .vocab_local = vocab_local,
                                .world = world,
                                .vocab = vocab});
      for (int k = 0; k < 3; ++k) {
        for (int v = 0; v < vocab; ++v) {
          const int rank = v / vocab_local;
          const float want = static_cast<float>(
              (static_cast<int64_t>(rank) * rows_per_rank + rows[k]) * vocab_local +
              (v - rank * vocab_local));
          ASSERT_EQ(out[static_cast<size_t>(k) * vocab + v], want)
              << "world " << world << " vocab " << vocab << " row " << k << " token " << v;
        }
      }
    }
  }
}

// Segment 4 writes runs of 3 entries (a field shared by a sequence's streams).
TEST(TableScatterCpu, WritesEveryEntryOfEverySegment) {
  std::vector<std::vector<int32_t>> tables(kernels::kScatterSegments - 1,
                                           std::vector<int32_t>(10, -1));
  std::vector<uint8_t> flags(10, 9);
  std::vector<int32_t> index = {7, 0, 3};
  std::vector<int32_t> runs = {2, 0};  // entries 6–8 and 0–2
  std::vector<int32_t> ints = {70, 0, 30};
  std::vector<uint8_t> bytes = {1, 0, 1};
  kernels::TableScatterParams p;
  for (int s = 0; s < kernels::kScatterSegments; ++s) {
    const bool last = s == kernels::kScatterSegments - 1;
    const int count = s == 1 ? 0 : s == 4 ? 2 : 3;  // an empty segment too
    const int run = s == 4 ? 3 : 1;
    p.segments[s] = {
        .table = last ? static_cast<void*>(flags.data()) : static_cast<void*>(tables[s].data()),
        .index = s == 4 ? runs.data() : index.data(),
        .value =
            last ? static_cast<const void*>(bytes.data()) : static_cast<const void*>(ints.data()),
        .count = count,
        .run = run};
    p.total += count * run;
  }
  kernels::TableScatterCpu(p);
  for (int s = 0; s < kernels::kScatterSegments - 1; ++s) {
    const std::vector<int32_t> want =
        s == 1   ? std::vector<int32_t>(10, -1)
        : s == 4 ? std::vector<int32_t>{0, 0, 0, -1, -1, -1, 70, 70, 70, -1}
                 : std::vector<int32_t>{0, -1, -1, 30, -1, -1, -1, 70, -1, -1};
    EXPECT_EQ(tables[s], want) << "segment " << s;
  }
  EXPECT_EQ(flags, (std::vector<uint8_t>{0, 9, 9, 1, 9, 9, 9, 1, 9, 9}));
}

// Adapter logits are x · w + bias in double within float rounding; decisions follow them.
TEST(DmsAdapterDecisionCpu, LogitsOfTheProjectionDecide) {
  std::mt19937 rng(43);
  const int tokens = 5, heads = 3, hidden = 33;
  const std::vector<float> x = Random(static_cast<size_t>(tokens) * hidden, rng);
  const std::vector<float> w = Random(static_cast<size_t>(heads) * hidden, rng, 0.05f);
  const std::vector<float> bias = Random(heads, rng, 0.1f);
  std::vector<float> logits(tokens * heads);
  std::vector<uint8_t> alpha(tokens * heads, 7);
  kernels::DmsAdapterDecisionCpu({.x = x.data(),
                                  .w = w.data(),
                                  .bias = bias.data(),
                                  .logits = logits.data(),
                                  .alpha = alpha.data(),
                                  .num_tokens = tokens,
                                  .num_kv_heads = heads,
                                  .hidden = hidden,
                                  .alpha_scale = 100.0f,
                                  .alpha_offset = 5.0f});
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h) {
      double want = bias[h];
      for (int i = 0; i < hidden; ++i) {
        want += static_cast<double>(x[static_cast<size_t>(t) * hidden + i]) *
                w[static_cast<size_t>(h) * hidden + i];
      }
      const float got = logits[static_cast<size_t>(t) * heads + h];
      EXPECT_NEAR(got, want, 1e-5);
      EXPECT_EQ(alpha[static_cast<size_t>(t) * heads + h], got * 100.0f - 5.0f > 0.0f ? 1 : 0);
    }
  }
}

// Head 0's decision of rank 0 reaches every head; another rank contributes 0 to the share.
TEST(DmsHeadZeroCpu, HeadZeroDecidesForEveryHead) {
  std::vector<uint8_t> alpha = {1, 0, 0,   // token 0: head 0 evicts
                                0, 1, 1};  // token 1: head 0 keeps
  std::vector<float> shared(2, -1.0f);
  kernels::DmsHeadZeroParams p{
      .alpha = alpha.data(), .shared = shared.data(), .num_tokens = 2, .num_kv_heads = 3};
  kernels::DmsHeadZeroToFloatCpu(p);
  EXPECT_EQ(shared, (std::vector<float>{1.0f, 0.0f}));
  kernels::DmsSpreadHeadZeroCpu(p);
  EXPECT_EQ(alpha, (std::vector<uint8_t>{1, 1, 1, 0, 0, 0}));
  p.contribute = false;
  kernels::DmsHeadZeroToFloatCpu(p);
  EXPECT_EQ(shared, (std::vector<float>{0.0f, 0.0f}));
}

}  // namespace
}  // namespace rami
