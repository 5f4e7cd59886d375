// The decoder layer as a sequence of CPU kernel calls.
#include "worker/decoder_layer.h"

#include <cmath>
#include <cstring>

#include "base/status_macros.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace rami {
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

void HeadNormAndRope(std::vector<float>& x, const std::vector<float>& norm, int heads,
                     const LayerContext& ctx) {
  const int num_tokens = ctx.step.num_tokens;
  const int d = ctx.config.head_dim;
  if (!norm.empty()) {  // Qwen3: RMSNorm over each head's head_dim channels, before RoPE
    kernels::RmsNormCpu({.x = x.data(),
                         .weight = norm.data(),
                         .out = x.data(),
                         .rows = num_tokens * heads,
                         .cols = d,
                         .eps = static_cast<float>(ctx.config.rms_norm_eps)});
  }
  kernels::RopeCpu({.x = x.data(),
                    .positions = ctx.step.positions.data(),
                    .inv_freq = ctx.rope.inv_freq.data(),
                    .num_tokens = num_tokens,
                    .num_heads = heads,
                    .head_dim = d,
                    .attention_scale = ctx.rope.attention_scale});
}

}  // namespace

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
  Linear(ws.normed, w.qkv, w.qkv_bias, ws.qkv, t, q_width + 2 * kv_width, c.hidden_size);
  SplitQkv(ws, t, q_width, kv_width);
  HeadNormAndRope(ws.q, w.q_norm, d.q_heads, ctx);
  HeadNormAndRope(ws.k, w.k_norm, d.kv_heads, ctx);
  const int32_t* streams = step.token_stream[layer].data();
  kernels::KvWriteCpu({.cache = ctx.cache,
                       .k = ws.k.data(),
                       .v = ws.v.data(),
                       .token_stream = streams,
                       .token_slot = step.token_slot.data(),
                       .num_tokens = t,
                       .num_kv_heads = d.kv_heads});
  kernels::PagedAttentionCpu({.cache = ctx.cache,
                              .q = ws.q.data(),
                              .out = ws.attn.data(),
                              .token_stream = streams,
                              .token_kv_len = step.token_kv_len.data(),
                              .num_tokens = t,
                              .num_q_heads = d.q_heads,
                              .num_kv_heads = d.kv_heads,
                              .scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim))});
  Linear(ws.attn, w.o_proj, w.o_bias, ws.delta, t, c.hidden_size, q_width);
  RAMI_RETURN_IF_ERROR(comm.AllReduceSum(ws.delta.data(), ws.delta.size()));

  // MLP block.
  AddAndNorm(ws, w.post_norm, /*add=*/true, t, c);
  Linear(ws.normed, w.gate_up, {}, ws.gate_up, t, 2 * d.intermediate, c.hidden_size);
  kernels::SwigluCpu(
      {.gate_up = ws.gate_up.data(), .out = ws.act.data(), .rows = t, .cols = d.intermediate});
  Linear(ws.act, w.down, {}, ws.delta, t, c.hidden_size, d.intermediate);
  return comm.AllReduceSum(ws.delta.data(), ws.delta.size());
}

}  // namespace rami
