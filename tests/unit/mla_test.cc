// Multi-head latent attention: the weight-absorbed form over the K-only latent cache (what
// rami runs, prefill and decode) equals the naive expanded attention (per-head keys and values
// up-projected from the latent, fp64) on random data — dense and DMS visibility, awkward
// sizes, several page sizes, random chunking. Also the MoE routing kernel against brute force.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/mla_attention.h"
#include "kernels/moe_routing.h"
#include "tests/testing/compare.h"
#include "worker/cpu/mla_layer.h"
#include "worker/kv/kv_cache.h"

namespace rami {

using checkpoint::MlaConfig;
using checkpoint::MlaWeights;
using cpu::AbsorbQuery;
using cpu::UpProjectValues;
using kv::CachePolicy;
using kv::KvCache;
using kv::SeqId;
using kv::StepStreams;

namespace {

using testing::AllClose;

struct MlaCase {
  int heads, lora, nope, rope, v_dim, tokens, page_size, window;  // window < 0: dense
};

class MlaAbsorbedTest : public ::testing::TestWithParam<MlaCase> {};

TEST_P(MlaAbsorbedTest, AbsorbedEqualsNaiveExpanded) {
  const MlaCase k = GetParam();
  std::mt19937 rng(17 + k.lora + k.tokens + k.page_size);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
  };
  MlaConfig m;
  m.kv_lora_rank = k.lora;
  m.qk_nope_head_dim = k.nope;
  m.qk_rope_head_dim = k.rope;
  m.v_head_dim = k.v_dim;
  const int row = m.latent_row(), qk = m.qk_head_dim(), T = k.tokens, H = k.heads;
  const float scale = 0.37f;
  // kv_b_proj [H · (nope + v), lora] as the checkpoint holds it, split as the loader does.
  const std::vector<float> kv_b = random(static_cast<size_t>(H) * (k.nope + k.v_dim) * k.lora);
  MlaWeights w;
  w.w_uk_t.resize(static_cast<size_t>(H) * k.lora * k.nope);
  w.w_uv.resize(static_cast<size_t>(H) * k.v_dim * k.lora);
  auto kv_b_at = [&](int h, int r, int l) {
    return kv_b[(static_cast<size_t>(h) * (k.nope + k.v_dim) + r) * k.lora + l];
  };
  for (int h = 0; h < H; ++h) {
    for (int l = 0; l < k.lora; ++l) {
      for (int n = 0; n < k.nope; ++n) w.w_uk_t[(h * k.lora + l) * k.nope + n] = kv_b_at(h, n, l);
      for (int d = 0; d < k.v_dim; ++d)
        w.w_uv[(h * k.v_dim + d) * k.lora + l] = kv_b_at(h, k.nope + d, l);
    }
  }
  const std::vector<float> rows = random(static_cast<size_t>(T) * row);  // [latent | rope key]
  const std::vector<float> q = random(static_cast<size_t>(T) * H * qk);  // [nope | rope] per head
  std::vector<uint8_t> alpha(T);
  for (uint8_t& a : alpha) a = rng() % 3 != 0 ? 1 : 0;  // mostly evict
  const bool dms = k.window >= 0;

  // Naive expanded attention in fp64: K_h = [W_uk_h c | k_rope], V_h = W_uv_h c.
  std::vector<float> want(static_cast<size_t>(T) * H * k.v_dim);
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < H; ++h) {
      const float* qh = q.data() + (static_cast<size_t>(t) * H + h) * qk;
      std::vector<double> scores, out(k.v_dim, 0.0);
      std::vector<int> keys;
      for (int j = 0; j <= t; ++j) {
        const bool evicted = dms && t - j > k.window && alpha[j + 1] != 0;
        if (evicted) continue;
        const float* c = rows.data() + static_cast<size_t>(j) * row;
        double s = 0.0;
        for (int n = 0; n < k.nope; ++n) {
          double key = 0.0;
          for (int l = 0; l < k.lora; ++l) key += double{kv_b_at(h, n, l)} * c[l];
          s += qh[n] * key;
        }
        for (int r = 0; r < k.rope; ++r) s += double{qh[k.nope + r]} * c[k.lora + r];
        scores.push_back(s * scale);
        keys.push_back(j);
      }
      const double max_s = *std::max_element(scores.begin(), scores.end());
      double denom = 0.0;
      for (size_t i = 0; i < keys.size(); ++i) {
        const double p = std::exp(scores[i] - max_s);
        denom += p;
        const float* c = rows.data() + static_cast<size_t>(keys[i]) * row;
        for (int d = 0; d < k.v_dim; ++d) {
          double value = 0.0;
          for (int l = 0; l < k.lora; ++l) value += double{kv_b_at(h, k.nope + d, l)} * c[l];
          out[d] += p * value;
        }
      }
      for (int d = 0; d < k.v_dim; ++d) {
        want[(static_cast<size_t>(t) * H + h) * k.v_dim + d] = static_cast<float>(out[d] / denom);
      }
    }
  }

  // Absorbed form through the K-only paged cache, in random chunks.
  KvCache cache({.page_size = k.page_size, .num_pages = 512}, /*num_layers=*/1,
                /*num_kv_heads=*/1, row, dms ? CachePolicy::Dms(k.window) : CachePolicy::Dense(),
                /*store_values=*/false);
  ASSERT_EQ(cache.pool().v_data(), nullptr);
  ASSERT_TRUE(cache.AddSequence(0).ok());
  std::vector<float> got(want.size());
  for (int start = 0; start < T;) {
    const int n = std::min<int>(T - start, 1 + static_cast<int>(rng() % 5));
    const std::pair<SeqId, int64_t> append{0, n};
    ASSERT_TRUE(cache.ReserveAppend({&append, 1}).ok());
    const SeqId id = 0;
    const StepStreams streams = cache.BuildStepStreams({&id, 1});
    const kernels::KvStreamsView view = cache.View(streams);
    std::vector<int32_t> positions(n), stream(n, 0);
    for (int i = 0; i < n; ++i) positions[i] = start + i;
    kernels::KvWriteCpu({.cache = view,
                         .k = rows.data() + static_cast<size_t>(start) * row,
                         .v = nullptr,
                         .alpha = dms ? alpha.data() + start : nullptr,
                         .token_stream = stream.data(),
                         .positions = positions.data(),
                         .num_tokens = n,
                         .num_kv_heads = 1});
    std::vector<float> q_latent(static_cast<size_t>(n) * H * row);
    AbsorbQuery(w, m, n, H, q.data() + static_cast<size_t>(start) * H * qk, q_latent.data());
    std::vector<float> latent(static_cast<size_t>(n) * H * k.lora);
    kernels::MlaAttentionCpu({.cache = view,
                              .q = q_latent.data(),
                              .out = latent.data(),
                              .token_stream = stream.data(),
                              .positions = positions.data(),
                              .num_tokens = n,
                              .num_heads = H,
                              .latent_dim = k.lora,
                              .scale = scale});
    UpProjectValues(w, m, n, H, latent.data(),
                    got.data() + static_cast<size_t>(start) * H * k.v_dim);
    cache.CommitAppend(0, n);
    start += n;
  }
  EXPECT_TRUE(AllClose(got, want, {.atol = 2e-4, .rtol = 2e-4}));
  if (dms) {
    EXPECT_LT(cache.StreamLive(0, 0, 0), T);  // something was evicted
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MlaAbsorbedTest,
    ::testing::Values(MlaCase{1, 1, 1, 2, 1, 1, 1, -1}, MlaCase{3, 17, 5, 4, 3, 17, 3, -1},
                      MlaCase{4, 32, 16, 8, 16, 29, 16, -1}, MlaCase{2, 9, 3, 6, 7, 23, 1, 2},
                      MlaCase{3, 17, 5, 4, 3, 31, 4, 5}, MlaCase{5, 33, 7, 2, 5, 40, 16, 0}));

// Brute force routing for one token: every subset choice spelled out in the plainest way.
std::vector<int> TopIndices(std::vector<float> v, int k) {
  std::vector<int> out;
  for (int i = 0; i < k; ++i) {
    const int best = static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
    out.push_back(best);
    v[best] = -INFINITY;
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(MoeRouting, MatchesBruteForce) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  const int tokens = 13, experts = 12, k = 3, groups = 4, topk_groups = 2;
  std::vector<float> logits(tokens * experts), bias(experts);
  for (float& x : logits) x = normal(rng);
  for (float& x : bias) x = 0.3f * normal(rng);
  for (kernels::MoeRouting routing :
       {kernels::MoeRouting::kSoftmaxGreedy, kernels::MoeRouting::kSoftmaxGroupLimited,
        kernels::MoeRouting::kSigmoidNoauxTc}) {
    const bool sigmoid = routing == kernels::MoeRouting::kSigmoidNoauxTc;
    std::vector<int32_t> ids(tokens * k);
    std::vector<float> weights(tokens * k);
    kernels::MoeRoutingCpu({.logits = logits.data(),
                            .correction_bias = sigmoid ? bias.data() : nullptr,
                            .expert_ids = ids.data(),
                            .weights = weights.data(),
                            .num_tokens = tokens,
                            .num_experts = experts,
                            .top_k = k,
                            .num_groups = groups,
                            .topk_groups = topk_groups,
                            .routing = routing,
                            .norm_topk_prob = sigmoid,
                            .routed_scaling_factor = 2.5f});
    for (int t = 0; t < tokens; ++t) {
      std::vector<double> s(experts);
      double sum = 0.0;
      for (int e = 0; e < experts; ++e) {
        const double x = logits[t * experts + e];
        s[e] = sigmoid ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x);
        sum += s[e];
      }
      if (!sigmoid) {
        for (double& x : s) x /= sum;
      }
      std::vector<float> choice(experts);
      for (int e = 0; e < experts; ++e)
        choice[e] = static_cast<float>(s[e] + (sigmoid ? bias[e] : 0));
      if (routing != kernels::MoeRouting::kSoftmaxGreedy) {
        const int size = experts / groups;
        std::vector<float> group(groups);
        for (int g = 0; g < groups; ++g) {
          std::vector<float> members(choice.begin() + g * size, choice.begin() + (g + 1) * size);
          std::sort(members.rbegin(), members.rend());
          group[g] = sigmoid ? members[0] + members[1] : members[0];
        }
        const std::vector<int> kept = TopIndices(group, topk_groups);
        for (int e = 0; e < experts; ++e) {
          if (std::find(kept.begin(), kept.end(), e / size) == kept.end()) choice[e] = 0.0f;
        }
      }
      const std::vector<int> want = TopIndices(choice, k);
      std::vector<int> got(ids.begin() + t * k, ids.begin() + (t + 1) * k);
      std::vector<std::pair<int, float>> pairs;
      for (int j = 0; j < k; ++j) pairs.emplace_back(got[j], weights[t * k + j]);
      std::sort(pairs.begin(), pairs.end());
      double chosen = 0.0;
      for (int e : want) chosen += sigmoid ? s[e] : choice[e];
      for (int j = 0; j < k; ++j) {
        ASSERT_EQ(pairs[j].first, want[j])
            << "routing " << static_cast<int>(routing) << " token " << t;
        const double raw = sigmoid ? s[want[j]] : choice[want[j]];
        const double expected = (sigmoid ? raw / chosen : raw) * 2.5;
        EXPECT_NEAR(pairs[j].second, expected, 1e-6);
      }
    }
  }
}

}  // namespace
}  // namespace rami
