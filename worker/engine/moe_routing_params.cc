// The MoE config's routing variant and sizes as kernel params.
#include "worker/engine/moe_routing_params.h"

namespace rami::engine {

using checkpoint::MoeConfig;
using checkpoint::MoeTopk;

kernels::MoeRoutingParams MoeRoutingParamsFor(const MoeConfig& m, int num_tokens) {
  kernels::MoeRouting routing = kernels::MoeRouting::kSoftmaxGreedy;
  switch (m.topk) {
    case MoeTopk::kGreedy:
      routing = kernels::MoeRouting::kSoftmaxGreedy;
      break;
    case MoeTopk::kGroupLimitedGreedy:
      routing = kernels::MoeRouting::kSoftmaxGroupLimited;
      break;
    case MoeTopk::kNoauxTc:
      routing = kernels::MoeRouting::kSigmoidNoauxTc;
      break;
  }
  return {.num_tokens = num_tokens,
          .num_experts = m.num_experts,
          .top_k = m.experts_per_token,
          .num_groups = m.num_groups,
          .topk_groups = m.topk_groups,
          .routing = routing,
          .norm_topk_prob = m.norm_topk_prob,
          .routed_scaling_factor = static_cast<float>(m.routed_scaling_factor)};
}

}  // namespace rami::engine
