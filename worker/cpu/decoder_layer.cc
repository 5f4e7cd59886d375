// The decoder layer as a sequence of CPU kernel calls.
#include "worker/cpu/decoder_layer.h"

#include <cmath>
#include <cstring>

#include "base/status_macros.h"
#include "kernels/dms_decision.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace rami::cpu {

using checkpoint::LayerWeights;
using checkpoint::ModelConfig;
using checkpoint::ShardDims;
using collectives::Collectives;

namespace {

// y[T, n] = x[T, k] · W[n, k]ᵀ (+ bias)
void Linear(const std::vector<float>& x, const std::vector<float>& w,
            const std::vector<float>& bias, std::vector<float>& y, int num_tokens, int n, int k) {
  kernels::LinearCpu({.x = x.data(),
                      .w = w.data(),
                      .bias = bias.empty() ? nullptr : bias.data(),
                      .y = y.data(),
                      .m = num_tokens,
                      .n = n,
                      .k = k});
}

// Splits the fused projection [T, (q + 2kv)·D] into q, k and v.
void SplitQkv(LayerWorkspace& ws, int num_tokens, int q_width, int kv_width) {
  const int row = q_width + 2 * kv_width;
  for (int t = 0; t < num_tokens; ++t) {
    const float* src = ws.qkv.data() + static_cast<int64_t>(t) * row;
    std::memcpy(ws.q.data() + static_cast<int64_t>(t) * q_width, src, sizeof(float) * q_width);
    std::memcpy(ws.k.data() + static_cast<int64_t>(t) * kv_width, src + q_width,
                sizeof(float) * kv_width);
    std::memcpy(ws.v.data() + static_cast<int64_t>(t) * kv_width, src + q_width + kv_width,
                sizeof(float) * kv_width);
  }
}

// Qwen3: RMSNorm over each head's head_dim channels, before RoPE.
void HeadNorm(std::vector<float>& x, const std::vector<float>& norm, int heads,
              const LayerContext& ctx) {
  if (norm.empty()) return;
  kernels::RmsNormCpu({.x = x.data(),
                       .weight = norm.data(),
                       .out = x.data(),
                       .rows = ctx.step.num_tokens * heads,
                       .cols = ctx.config.head_dim,
                       .eps = static_cast<float>(ctx.config.rms_norm_eps)});
}

void Rope(std::vector<float>& x, int heads, const LayerContext& ctx) {
  const int num_tokens = ctx.step.num_tokens;
  const int d = ctx.config.head_dim;
  kernels::RopeCpu({.x = x.data(),
                    .positions = ctx.step.positions.data(),
                    .inv_freq = ctx.rope.inv_freq.data(),
                    .num_tokens = num_tokens,
                    .num_heads = heads,
                    .head_dim = d,
                    .attention_scale = ctx.rope.attention_scale});
}

kernels::DmsQueryDecisionParams SurgeryParams(const LayerContext& ctx, LayerWorkspace& ws) {
  return {.q = ws.q.data(),
          .alpha = ws.alpha.data(),
          .num_tokens = ctx.step.num_tokens,
          .num_q_heads = ctx.dims.q_heads,
          .num_kv_heads = ctx.dims.kv_heads,
          .head_dim = ctx.config.head_dim,
          .alpha_scale = static_cast<float>(ctx.config.dms.alpha_scale),
          .alpha_offset = static_cast<float>(ctx.config.dms.initial_alpha_offset)};
}

// dms_alpha_per "layer": KV head 0's decision (on rank 0) serves every head of every rank.
absl::Status ShareHeadZero(const LayerContext& ctx, LayerWorkspace& ws, Collectives& comm) {
  const int t = ctx.step.num_tokens;
  std::vector<float> head_zero(t);
  const kernels::DmsHeadZeroParams share{.alpha = ws.alpha.data(),
                                         .shared = head_zero.data(),
                                         .num_tokens = t,
                                         .num_kv_heads = ctx.dims.kv_heads};
  kernels::DmsHeadZeroToFloatCpu(share);
  RAMI_RETURN_IF_ERROR(comm.Broadcast(head_zero.data(), head_zero.size(), /*root=*/0));
  kernels::DmsSpreadHeadZeroCpu(share);
  return absl::OkStatus();
}

}  // namespace

// normed = RMSNorm(residual [+= delta]) · weight
void AddAndNorm(LayerWorkspace& ws, const std::vector<float>& weight, bool add, int num_tokens,
                const ModelConfig& c) {
  kernels::RmsNormCpu({.x = add ? ws.delta.data() : ws.residual.data(),
                       .residual = add ? ws.residual.data() : nullptr,
                       .weight = weight.data(),
                       .out = ws.normed.data(),
                       .rows = num_tokens,
                       .cols = c.hidden_size,
                       .eps = static_cast<float>(c.rms_norm_eps)});
}

// DMS adapter: α = (dms_proj_alpha · RMSNorm_alpha(x) · scale − offset > 0), with x the
// layer input before input_layernorm (the residual stream, after the fused add).
void AdapterDecisions(const LayerWeights& w, const LayerContext& ctx, LayerWorkspace& ws) {
  const ModelConfig& c = ctx.config;
  const int t = ctx.step.num_tokens;
  std::vector<float> x(ws.residual.size());
  kernels::RmsNormCpu({.x = ws.residual.data(),
                       .weight = w.dms_alpha_norm.data(),
                       .out = x.data(),
                       .rows = t,
                       .cols = c.hidden_size,
                       .eps = static_cast<float>(c.rms_norm_eps)});
  kernels::DmsAdapterDecisionCpu(
      {.x = x.data(),
       .w = w.dms_alpha.data(),
       .bias = w.dms_alpha_bias.empty() ? nullptr : w.dms_alpha_bias.data(),
       .logits = ws.alpha_logits.data(),
       .alpha = ws.alpha.data(),
       .num_tokens = t,
       .num_kv_heads = ctx.dims.kv_heads,
       .hidden = c.hidden_size,
       .alpha_scale = static_cast<float>(c.dms.alpha_scale),
       .alpha_offset = static_cast<float>(c.dms.initial_alpha_offset)});
}

absl::Status RunDenseMlp(const LayerWeights& w, const LayerContext& ctx, LayerWorkspace& ws,
                         Collectives& comm) {
  const int t = ctx.step.num_tokens;
  const int inter = ctx.dims.intermediate;
  const int hidden = ctx.config.hidden_size;
  Linear(ws.normed, w.gate_up, {}, ws.gate_up, t, 2 * inter, hidden);
  kernels::SwigluCpu(
      {.gate_up = ws.gate_up.data(), .out = ws.act.data(), .rows = t, .cols = inter});
  Linear(ws.act, w.down, {}, ws.delta, t, hidden, inter);
  return comm.AllReduceSum(ws.delta.data(), ws.delta.size());
}

void LayerWorkspace::Resize(int num_tokens, const ModelConfig& c, const ShardDims& d) {
  const size_t t = static_cast<size_t>(num_tokens);
  const size_t hd = static_cast<size_t>(c.head_dim);
  residual.resize(t * c.hidden_size);
  delta.resize(t * c.hidden_size);
  normed.resize(t * c.hidden_size);
  qkv.resize(t * (d.q_heads + 2 * d.kv_heads) * hd);
  q.resize(t * d.q_heads * hd);
  k.resize(t * d.kv_heads * hd);
  v.resize(t * d.kv_heads * hd);
  attn.resize(t * d.q_heads * hd);
  gate_up.resize(t * 2 * d.intermediate);
  act.resize(t * d.intermediate);
  alpha_logits.resize(t * d.kv_heads);
  alpha.resize(t * d.kv_heads);
}

absl::Status RunDecoderLayer(const LayerWeights& w, int layer, bool first, const LayerContext& ctx,
                             LayerWorkspace& ws, Collectives& comm) {
  const ModelConfig& c = ctx.config;
  const ShardDims& d = ctx.dims;
  const StepMetadata& step = ctx.step;
  const int t = step.num_tokens;
  const int q_width = d.q_heads * c.head_dim;
  const int kv_width = d.kv_heads * c.head_dim;

  // Attention block.
  AddAndNorm(ws, w.input_norm, /*add=*/!first, t, c);
  if (c.dms.enabled && c.dms.separate_alpha) AdapterDecisions(w, ctx, ws);
  Linear(ws.normed, w.qkv, w.qkv_bias, ws.qkv, t, q_width + 2 * kv_width, c.hidden_size);
  SplitQkv(ws, t, q_width, kv_width);
  HeadNorm(ws.q, w.q_norm, d.q_heads, ctx);
  HeadNorm(ws.k, w.k_norm, d.kv_heads, ctx);
  const kernels::DmsQueryDecisionParams surgery = SurgeryParams(ctx, ws);
  const bool borrowed = c.dms.enabled && !c.dms.separate_alpha;
  if (borrowed) kernels::DmsQueryDecisionCpu(surgery);  // reads α, zeroes the channel
  Rope(ws.q, d.q_heads, ctx);
  Rope(ws.k, d.kv_heads, ctx);
  if (borrowed) kernels::DmsZeroDecisionChannelCpu(surgery);  // RoPE mixed it back in
  if (c.dms.enabled && c.dms.alpha_per_layer) RAMI_RETURN_IF_ERROR(ShareHeadZero(ctx, ws, comm));
  const int32_t* streams = step.token_stream[layer].data();
  kernels::KvWriteCpu({.cache = ctx.cache,
                       .k = ws.k.data(),
                       .v = ws.v.data(),
                       .alpha = ctx.write_decisions ? ws.alpha.data() : nullptr,
                       .token_stream = streams,
                       .positions = step.positions.data(),
                       .num_tokens = t,
                       .num_kv_heads = d.kv_heads});
  kernels::PagedAttentionCpu({.cache = ctx.cache,
                              .q = ws.q.data(),
                              .out = ws.attn.data(),
                              .token_stream = streams,
                              .positions = step.positions.data(),
                              .num_tokens = t,
                              .num_q_heads = d.q_heads,
                              .num_kv_heads = d.kv_heads,
                              .scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim))});
  Linear(ws.attn, w.o_proj, w.o_bias, ws.delta, t, c.hidden_size, q_width);
  RAMI_RETURN_IF_ERROR(comm.AllReduceSum(ws.delta.data(), ws.delta.size()));

  // MLP block.
  AddAndNorm(ws, w.post_norm, /*add=*/true, t, c);
  return RunDenseMlp(w, ctx, ws, comm);
}

}  // namespace rami::cpu
