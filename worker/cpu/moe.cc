// MoE block: router GEMM, routing, per-expert gathered GEMMs, weighted scatter-add.
#include "worker/cpu/moe.h"

#include <algorithm>
#include <vector>

#include "kernels/linear.h"
#include "kernels/moe_routing.h"
#include "kernels/swiglu.h"
#include "worker/engine/moe_routing_params.h"

namespace rami::cpu {

using checkpoint::ExpertWeights;
using checkpoint::MoeConfig;
using checkpoint::MoeWeights;
using collectives::Collectives;
using engine::MoeRoutingParamsFor;

namespace {

// out[n, hidden] = SwiGLU(x · gate_upᵀ) · downᵀ for one expert's slice.
void RunExpert(const ExpertWeights& e, const float* x, int n, int hidden, int inter, float* out) {
  std::vector<float> gate_up(static_cast<size_t>(n) * 2 * inter),
      act(static_cast<size_t>(n) * inter);
  kernels::LinearCpu(
      {.x = x, .w = e.gate_up.data(), .y = gate_up.data(), .m = n, .n = 2 * inter, .k = hidden});
  kernels::SwigluCpu({.gate_up = gate_up.data(), .out = act.data(), .rows = n, .cols = inter});
  kernels::LinearCpu(
      {.x = act.data(), .w = e.down.data(), .y = out, .m = n, .n = hidden, .k = inter});
}

}  // namespace

absl::Status RunMoe(const MoeWeights& w, const LayerContext& ctx, LayerWorkspace& ws,
                    Collectives& comm) {
  const MoeConfig& m = ctx.config.moe;
  const int t = ctx.step.num_tokens;
  const int hidden = ctx.config.hidden_size;
  const int k = m.experts_per_token;
  std::vector<float> logits(static_cast<size_t>(t) * m.num_experts);
  kernels::LinearCpu({.x = ws.normed.data(),
                      .w = w.router.data(),
                      .y = logits.data(),
                      .m = t,
                      .n = m.num_experts,
                      .k = hidden});
  std::vector<int32_t> ids(static_cast<size_t>(t) * k);
  std::vector<float> weights(ids.size());
  kernels::MoeRoutingParams routing = MoeRoutingParamsFor(m, t);
  routing.logits = logits.data();
  routing.correction_bias = w.correction_bias.empty() ? nullptr : w.correction_bias.data();
  routing.expert_ids = ids.data();
  routing.weights = weights.data();
  kernels::MoeRoutingCpu(routing);

  // Tokens of each expert, in token order.
  std::vector<std::vector<std::pair<int, float>>> routed(m.num_experts);
  for (int i = 0; i < t; ++i) {
    for (int j = 0; j < k; ++j) routed[ids[i * k + j]].emplace_back(i, weights[i * k + j]);
  }
  std::fill(ws.delta.begin(), ws.delta.end(), 0.0f);
  std::vector<float> x, y;
  for (int e = 0; e < m.num_experts; ++e) {
    const int n = static_cast<int>(routed[e].size());
    if (n == 0) continue;
    x.resize(static_cast<size_t>(n) * hidden);
    y.resize(x.size());
    for (int r = 0; r < n; ++r) {
      std::copy_n(ws.normed.begin() + static_cast<int64_t>(routed[e][r].first) * hidden, hidden,
                  x.begin() + static_cast<int64_t>(r) * hidden);
    }
    RunExpert(w.experts[e], x.data(), n, hidden, ctx.dims.moe_intermediate, y.data());
    for (int r = 0; r < n; ++r) {
      float* out = ws.delta.data() + static_cast<int64_t>(routed[e][r].first) * hidden;
      const float* src = y.data() + static_cast<int64_t>(r) * hidden;
      for (int i = 0; i < hidden; ++i) out[i] += routed[e][r].second * src[i];
    }
  }
  if (!w.shared.down.empty()) {
    y.resize(static_cast<size_t>(t) * hidden);
    RunExpert(w.shared, ws.normed.data(), t, hidden, ctx.dims.shared_intermediate, y.data());
    for (size_t i = 0; i < y.size(); ++i) ws.delta[i] += y[i];
  }
  return comm.AllReduceSum(ws.delta.data(), ws.delta.size());
}

}  // namespace rami::cpu
