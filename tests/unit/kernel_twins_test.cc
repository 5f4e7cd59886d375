// CPU twins added with the CUDA backend: the fused QKV preparation against an fp64 reference
// of split → q/k RMSNorm → DMS decision (+ channel zeroing) → RoPE → zeroing again; log-softmax
// + top-n against the canonical order; the per-step KV slot copies.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kv_copy.h"
#include "kernels/log_softmax_topn.h"
#include "kernels/qkv_prep.h"
#include "tests/testing/compare.h"

namespace rami {
namespace {

TEST(QkvPrepCpu, MatchesFp64Reference) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr int kTokens = 5, kQHeads = 8, kKvHeads = 2, kDim = 16, kGroup = kQHeads / kKvHeads;
  constexpr int kHeads = kQHeads + 2 * kKvHeads;
  std::vector<float> qkv(kTokens * kHeads * kDim), q_norm(kDim), k_norm(kDim), inv_freq(kDim / 2);
  for (float& v : qkv) v = normal(rng);
  for (float& v : q_norm) v = 1.0f + 0.3f * normal(rng);
  for (float& v : k_norm) v = 1.0f + 0.3f * normal(rng);
  for (int i = 0; i < kDim / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / kDim);
  const std::vector<int32_t> positions = {0, 1, 17, 513, 4099};
  const float eps = 1e-6f, attention_scale = 1.25f;
  std::vector<float> q(kTokens * kQHeads * kDim), k(kTokens * kKvHeads * kDim), v(k.size());
  std::vector<uint8_t> alpha(kTokens * kKvHeads, 9);
  kernels::QkvPrepCpu({.qkv = qkv.data(),
                       .q = q.data(),
                       .k = k.data(),
                       .v = v.data(),
                       .q_norm = q_norm.data(),
                       .k_norm = k_norm.data(),
                       .positions = positions.data(),
                       .inv_freq = inv_freq.data(),
                       .alpha = alpha.data(),
                       .num_tokens = kTokens,
                       .num_q_heads = kQHeads,
                       .num_kv_heads = kKvHeads,
                       .head_dim = kDim,
                       .eps = eps,
                       .attention_scale = attention_scale});

  std::vector<float> q_ref(q.size()), k_ref(k.size()), v_ref(v.size());
  for (int t = 0; t < kTokens; ++t) {
    for (int head = 0; head < kHeads; ++head) {
      const float* x = qkv.data() + (t * kHeads + head) * kDim;
      if (head >= kQHeads + kKvHeads) {  // value head: a plain copy
        std::copy(x, x + kDim, v_ref.data() + (t * kKvHeads + head - kQHeads - kKvHeads) * kDim);
        continue;
      }
      const bool is_q = head < kQHeads;
      const float* w = is_q ? q_norm.data() : k_norm.data();
      double sum_sq = 0;
      for (int i = 0; i < kDim; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
      const double inv_rms = 1.0 / std::sqrt(sum_sq / kDim + eps);
      std::vector<double> y(kDim);
      for (int i = 0; i < kDim; ++i) y[i] = w[i] * x[i] * inv_rms;
      const bool decides = is_q && head % kGroup == 0;
      if (decides) {
        EXPECT_EQ(alpha[t * kKvHeads + head / kGroup], y[kDim - 1] * 100.0 - 5.0 > 0 ? 1 : 0)
            << "token " << t << " head " << head;
        y[kDim - 1] = 0.0;
      }
      std::vector<double> r(kDim);
      for (int i = 0; i < kDim / 2; ++i) {
        const double angle = static_cast<double>(static_cast<float>(positions[t]) * inv_freq[i]);
        const double c = std::cos(angle) * attention_scale, s = std::sin(angle) * attention_scale;
        r[i] = y[i] * c - y[i + kDim / 2] * s;
        r[i + kDim / 2] = y[i + kDim / 2] * c + y[i] * s;
      }
      if (decides) r[kDim - 1] = 0.0;
      float* out = is_q ? q_ref.data() + (t * kQHeads + head) * kDim
                        : k_ref.data() + (t * kKvHeads + head - kQHeads) * kDim;
      for (int i = 0; i < kDim; ++i) out[i] = static_cast<float>(r[i]);
    }
  }
  EXPECT_TRUE(testing::AllClose(q, q_ref, {.atol = 1e-5, .rtol = 1e-5}, "q"));
  EXPECT_TRUE(testing::AllClose(k, k_ref, {.atol = 1e-5, .rtol = 1e-5}, "k"));
  EXPECT_TRUE(testing::AllClose(v, v_ref, {.bitwise = true}, "v"));
  // Only the first head of each group carries the zeroed channel.
  for (int t = 0; t < kTokens; ++t) {
    for (int h = 0; h < kQHeads; ++h) {
      const float last = q[(t * kQHeads + h) * kDim + kDim - 1];
      EXPECT_EQ(last == 0.0f, h % kGroup == 0) << "token " << t << " head " << h;
    }
  }
}

TEST(QkvPrepCpu, WithoutNormOrDecisionIsSplitAndRope) {
  constexpr int kDim = 4;
  // One token, one q head, one kv head: [q | k | v].
  const std::vector<float> qkv = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const std::vector<int32_t> positions = {0};  // angle 0: RoPE is the identity (scale 1)
  const std::vector<float> inv_freq = {1.0f, 0.5f};
  std::vector<float> q(kDim), k(kDim), v(kDim);
  kernels::QkvPrepCpu({.qkv = qkv.data(),
                       .q = q.data(),
                       .k = k.data(),
                       .v = v.data(),
                       .positions = positions.data(),
                       .inv_freq = inv_freq.data(),
                       .num_tokens = 1,
                       .num_q_heads = 1,
                       .num_kv_heads = 1,
                       .head_dim = kDim});
  EXPECT_EQ(q, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(k, (std::vector<float>{5, 6, 7, 8}));
  EXPECT_EQ(v, (std::vector<float>{9, 10, 11, 12}));
}

TEST(LogSoftmaxTopNCpu, CanonicalOrderAndPadding) {
  const float ninf = -std::numeric_limits<float>::infinity();
  // Row 0 ties ids 0 and 2 (the lower id first); row 1 holds a masked token; both are
  // shorter than n.
  const std::vector<float> logits = {2.0f, 0.5f, 2.0f, ninf, 1.0f, 0.5f};
  constexpr int kRows = 2, kCols = 3, kTopN = 4;
  std::vector<float> out(kRows * kCols), top_lp(kRows * kTopN);
  std::vector<int32_t> top_ids(kRows * kTopN);
  // The scored tokens: one outside the top, one masked (-inf).
  const std::vector<int32_t> targets = {1, 0};
  std::vector<float> target_lp(kRows);
  kernels::LogSoftmaxTopNCpu({.logits = logits.data(),
                              .out = out.data(),
                              .top_ids = top_ids.data(),
                              .top_logprobs = top_lp.data(),
                              .rows = kRows,
                              .cols = kCols,
                              .top_n = kTopN,
                              .targets = targets.data(),
                              .target_logprobs = target_lp.data()});
  EXPECT_EQ(top_ids, (std::vector<int32_t>{0, 2, 1, -1, 1, 2, 0, -1}));
  // Row 0: log(e^0.5 / (2 e^2 + e^0.5)), by hand; row 1: the masked token.
  EXPECT_NEAR(target_lp[0], 0.5 - std::log(2 * std::exp(2.0) + std::exp(0.5)), 1e-6);
  EXPECT_EQ(target_lp[1], ninf);
  for (int r = 0; r < kRows; ++r) {
    EXPECT_EQ(target_lp[r], out[r * kCols + targets[r]]);
    double total = 0;
    for (int c = 0; c < kCols; ++c) total += std::exp(static_cast<double>(out[r * kCols + c]));
    EXPECT_NEAR(total, 1.0, 1e-6);
    for (int j = 0; j < kTopN; ++j) {
      const int32_t id = top_ids[r * kTopN + j];
      if (id < 0) {
        EXPECT_EQ(top_lp[r * kTopN + j], ninf);
      } else {
        EXPECT_EQ(top_lp[r * kTopN + j], out[r * kCols + id]);
      }
    }
  }
}

TEST(KvCopyCpu, CopiesSlotsOfKAndV) {
  constexpr int kPages = 4, kPageSize = 3, kDim = 2;
  std::vector<float> k(kPages * kPageSize * kDim), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<float>(i), v[i] = 100.0f + i;
  const std::vector<float> k0 = k, v0 = v;
  // A promotion (page 0 slot 2 → page 3 slot 1) and a fork tail copy (page 1 slots 0-1 → page 2).
  const std::vector<kernels::KvCopyOp> ops = {
      {.src_page = 0, .src_slot = 2, .dst_page = 3, .dst_slot = 1, .num_slots = 1},
      {.src_page = 1, .src_slot = 0, .dst_page = 2, .dst_slot = 0, .num_slots = 2}};
  kernels::KvCopyCpu({.k_pool = k.data(),
                      .v_pool = v.data(),
                      .ops = ops.data(),
                      .num_ops = 2,
                      .page_size = kPageSize,
                      .head_dim = kDim,
                      .dtype = kernels::DeviceDType::kF32});
  auto at = [](int page, int slot) { return (page * kPageSize + slot) * kDim; };
  std::vector<float> k_want = k0, v_want = v0;
  for (int i = 0; i < kDim; ++i) {
    k_want[at(3, 1) + i] = k0[at(0, 2) + i];
    v_want[at(3, 1) + i] = v0[at(0, 2) + i];
    for (int s = 0; s < 2; ++s) {
      k_want[at(2, s) + i] = k0[at(1, s) + i];
      v_want[at(2, s) + i] = v0[at(1, s) + i];
    }
  }
  EXPECT_EQ(k, k_want);
  EXPECT_EQ(v, v_want);
}

}  // namespace
}  // namespace rami
