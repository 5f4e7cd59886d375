// MoE routing: MoeRoutingCuda against MoeRoutingCpu for DeepSeek-V3 (sigmoid noaux_tc, bias,
// 8 groups, normalised, ×2.5), V2 (softmax, group-limited), V2-Lite (softmax, greedy), the
// goldens' tiny shape and a bias-free sigmoid, over 1/3/17/129 tokens. The logits are redrawn
// per token until every comparison the routing makes (choice values, group scores) has a
// margin of 1e-6, so float rounding cannot flip a pick: ids must be equal, weights within
// 1e-6 (+1e-6 relative). Skips without a GPU.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/moe_routing.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;
using kernels::MoeRouting;

struct RoutingCase {
  const char* name;
  int experts, top_k, groups, topk_groups;
  MoeRouting routing;
  bool bias, norm;
  float scaling;
};

// True when the sorted values are pairwise at least `margin` apart.
bool Separated(std::vector<double> v, double margin) {
  std::sort(v.begin(), v.end());
  for (size_t i = 1; i < v.size(); ++i) {
    if (v[i] - v[i - 1] < margin) return false;
  }
  return true;
}

// Whether a token's logits leave every routing comparison a margin (in double precision).
bool HasMargins(const RoutingCase& c, const float* logits, const std::vector<float>& bias) {
  const int e = c.experts, group_size = e / c.groups;
  std::vector<double> choice(e);
  if (c.routing == MoeRouting::kSigmoidNoauxTc) {
    for (int i = 0; i < e; ++i) choice[i] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[i])));
  } else {
    const double big = *std::max_element(logits, logits + e);
    double sum = 0.0;
    for (int i = 0; i < e; ++i) sum += choice[i] = std::exp(logits[i] - big);
    for (double& x : choice) x /= sum;
  }
  for (int i = 0; i < e; ++i) {
    if (c.bias) choice[i] += bias[i];
    if (std::abs(choice[i]) < 1e-6) return false;  // clear of the masked experts' zeros
  }
  if (!Separated(choice, 1e-6)) return false;
  std::vector<double> groups(c.groups);
  for (int g = 0; g < c.groups; ++g) {
    std::vector<double> members(choice.begin() + g * group_size,
                                choice.begin() + (g + 1) * group_size);
    std::sort(members.rbegin(), members.rend());
    groups[g] = c.routing == MoeRouting::kSigmoidNoauxTc && group_size >= 2
                    ? members[0] + members[1]
                    : members[0];
  }
  return c.routing == MoeRouting::kSoftmaxGreedy || Separated(groups, 1e-6);
}

TEST(MoeRoutingGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  const RoutingCase cases[] = {
      {"v3", 256, 8, 8, 4, MoeRouting::kSigmoidNoauxTc, true, true, 2.5f},
      {"v2", 160, 6, 8, 3, MoeRouting::kSoftmaxGroupLimited, false, false, 16.0f},
      {"v2-lite", 64, 6, 1, 1, MoeRouting::kSoftmaxGreedy, false, false, 1.0f},
      {"golden-v3", 8, 2, 4, 2, MoeRouting::kSigmoidNoauxTc, true, true, 2.5f},
      {"sigmoid-no-bias", 32, 3, 1, 1, MoeRouting::kSigmoidNoauxTc, false, false, 1.0f},
  };
  std::mt19937 rng(71);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> small(-0.1f, 0.1f);
  for (const RoutingCase& c : cases) {
    for (int tokens : {1, 3, 17, 129}) {
      std::vector<float> bias(c.experts);
      for (float& b : bias) b = small(rng);
      std::vector<float> logits(static_cast<size_t>(tokens) * c.experts);
      for (int t = 0; t < tokens; ++t) {
        float* row = logits.data() + static_cast<size_t>(t) * c.experts;
        do {
          for (int i = 0; i < c.experts; ++i) row[i] = normal(rng);
        } while (!HasMargins(c, row, bias));
      }
      kernels::MoeRoutingParams p{.correction_bias = c.bias ? bias.data() : nullptr,
                                  .num_tokens = tokens,
                                  .num_experts = c.experts,
                                  .top_k = c.top_k,
                                  .num_groups = c.groups,
                                  .topk_groups = c.topk_groups,
                                  .routing = c.routing,
                                  .norm_topk_prob = c.norm,
                                  .routed_scaling_factor = c.scaling};
      std::vector<int32_t> ids(static_cast<size_t>(tokens) * c.top_k);
      std::vector<float> weights(ids.size());
      kernels::MoeRoutingParams cpu = p;
      cpu.logits = logits.data();
      cpu.expert_ids = ids.data();
      cpu.weights = weights.data();
      kernels::MoeRoutingCpu(cpu);

      DeviceArray<float> dlogits(logits), dbias(bias), dweights(weights.size());
      DeviceArray<int32_t> dids(ids.size());
      kernels::MoeRoutingParams gpu = p;
      gpu.logits = dlogits.get();
      gpu.correction_bias = c.bias ? dbias.get() : nullptr;
      gpu.expert_ids = dids.get();
      gpu.weights = dweights.get();
      ASSERT_EQ(kernels::MoeRoutingCuda(gpu, nullptr), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::string what = std::string(c.name) + " tokens " + std::to_string(tokens);
      EXPECT_EQ(dids.ToHost(), ids) << what;
      EXPECT_TRUE(
          testing::AllClose(dweights.ToHost(), weights, {.atol = 1e-6, .rtol = 1e-6}, what));
    }
  }
}

// Exact ties (all logits equal) go to the lower expert index, as on the CPU; bad shapes are
// refused before a launch.
TEST(MoeRoutingGpu, TiesGoToLowerIndexAndBadShapesAreRefused) {
  RAMI_REQUIRE_CUDA_DEVICE();
  constexpr int kExperts = 64, kTopK = 6, kTokens = 3;
  for (MoeRouting routing : {MoeRouting::kSoftmaxGreedy, MoeRouting::kSoftmaxGroupLimited,
                             MoeRouting::kSigmoidNoauxTc}) {
    const std::vector<float> logits(kTokens * kExperts, 0.25f);
    std::vector<int32_t> ids(kTokens * kTopK);
    std::vector<float> weights(ids.size());
    kernels::MoeRoutingParams p{.logits = logits.data(),
                                .expert_ids = ids.data(),
                                .weights = weights.data(),
                                .num_tokens = kTokens,
                                .num_experts = kExperts,
                                .top_k = kTopK,
                                .num_groups = 8,
                                .topk_groups = 3,
                                .routing = routing,
                                .norm_topk_prob = true,
                                .routed_scaling_factor = 1.0f};
    kernels::MoeRoutingCpu(p);
    DeviceArray<float> dlogits(logits), dweights(weights.size());
    DeviceArray<int32_t> dids(ids.size());
    kernels::MoeRoutingParams gpu = p;
    gpu.logits = dlogits.get();
    gpu.expert_ids = dids.get();
    gpu.weights = dweights.get();
    ASSERT_EQ(kernels::MoeRoutingCuda(gpu, nullptr), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(dids.ToHost(), ids);
    EXPECT_TRUE(
        testing::AllClose(dweights.ToHost(), weights, {.atol = 1e-6, .rtol = 1e-6}, "ties"));

    kernels::MoeRoutingParams bad = gpu;
    bad.num_groups = 7;  // does not divide 64
    EXPECT_EQ(kernels::MoeRoutingCuda(bad, nullptr), cudaErrorInvalidValue);
    bad = gpu;
    bad.top_k = kExperts + 1;
    EXPECT_EQ(kernels::MoeRoutingCuda(bad, nullptr), cudaErrorInvalidValue);
  }
}

}  // namespace
}  // namespace rami
