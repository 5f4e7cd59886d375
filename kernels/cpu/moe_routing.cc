// CPU twin of DeepSeek MoE routing. Top-k ties go to the lower expert index.
#include "kernels/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace rami::kernels {
namespace {

// Indices of the k largest values (descending; ties: lower index first).
void TopK(const std::vector<float>& values, int k, std::vector<int>& out) {
  out.resize(values.size());
  std::iota(out.begin(), out.end(), 0);
  std::partial_sort(out.begin(), out.begin() + k, out.end(), [&](int a, int b) {
    return values[a] > values[b] || (values[a] == values[b] && a < b);
  });
  out.resize(k);
}

}  // namespace

void MoeRoutingCpu(const MoeRoutingParams& p) {
  const int e = p.num_experts;
  const int group_size = e / p.num_groups;
  std::vector<float> scores(e), choice(e), group_scores(p.num_groups), top2;
  std::vector<int> picked, groups;
  for (int t = 0; t < p.num_tokens; ++t) {
    const float* logits = p.logits + static_cast<int64_t>(t) * e;
    if (p.routing == MoeRouting::kSigmoidNoauxTc) {
      for (int i = 0; i < e; ++i) scores[i] = 1.0f / (1.0f + std::exp(-logits[i]));
    } else {
      const float max_logit = *std::max_element(logits, logits + e);
      float sum = 0.0f;
      for (int i = 0; i < e; ++i) sum += scores[i] = std::exp(logits[i] - max_logit);
      for (int i = 0; i < e; ++i) scores[i] /= sum;
    }
    choice = scores;
    if (p.correction_bias != nullptr) {
      for (int i = 0; i < e; ++i) choice[i] += p.correction_bias[i];
    }
    if (p.routing != MoeRouting::kSoftmaxGreedy) {
      for (int g = 0; g < p.num_groups; ++g) {
        const float* first = choice.data() + g * group_size;
        if (p.routing == MoeRouting::kSoftmaxGroupLimited) {
          group_scores[g] = *std::max_element(first, first + group_size);
        } else {
          top2.assign(first, first + group_size);
          std::partial_sort(top2.begin(), top2.begin() + 2, top2.end(), std::greater<float>());
          group_scores[g] = top2[0] + top2[1];
        }
      }
      TopK(group_scores, p.topk_groups, groups);
      std::vector<bool> keep(p.num_groups, false);
      for (int g : groups) keep[g] = true;
      for (int i = 0; i < e; ++i) {
        if (!keep[i / group_size]) choice[i] = 0.0f;
      }
    }
    TopK(choice, p.top_k, picked);
    int32_t* ids = p.expert_ids + static_cast<int64_t>(t) * p.top_k;
    float* weights = p.weights + static_cast<int64_t>(t) * p.top_k;
    float sum = 0.0f;
    for (int j = 0; j < p.top_k; ++j) {
      ids[j] = picked[j];
      // Softmax routing weighs by the (masked) choice value, sigmoid by the raw score.
      weights[j] = p.routing == MoeRouting::kSigmoidNoauxTc ? scores[picked[j]] : choice[picked[j]];
      sum += weights[j];
    }
    for (int j = 0; j < p.top_k; ++j) {
      if (p.norm_topk_prob) weights[j] /= sum + 1e-20f;
      weights[j] *= p.routed_scaling_factor;
    }
  }
}

}  // namespace rami::kernels
