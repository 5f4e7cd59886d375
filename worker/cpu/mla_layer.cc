// The MLA decoder layer as a sequence of CPU kernel calls.
#include "worker/cpu/mla_layer.h"

#include <algorithm>
#include <vector>

#include "base/status_macros.h"
#include "kernels/linear.h"
#include "kernels/mla_attention.h"
#include "kernels/paged_attention.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "worker/cpu/moe.h"

namespace rami::cpu {

using checkpoint::LayerWeights;
using checkpoint::MlaConfig;
using checkpoint::MlaWeights;
using checkpoint::ModelConfig;
using collectives::Collectives;

namespace {

// DeepSeek's q_a_layernorm and kv_a_layernorm use the RMSNorm default eps, not rms_norm_eps.
constexpr float kLoraNormEps = 1e-6f;

void Linear(const float* x, const std::vector<float>& w, const std::vector<float>& bias, float* y,
            int m, int n, int k) {
  kernels::LinearCpu({.x = x,
                      .w = w.data(),
                      .bias = bias.empty() ? nullptr : bias.data(),
                      .y = y,
                      .m = m,
                      .n = n,
                      .k = k});
}

// Copies column block [col, col + width) of each of `rows` rows of stride `src_stride`.
void Gather(const float* src, int rows, int src_stride, int col, int width, float* dst) {
  for (int r = 0; r < rows; ++r) {
    std::copy_n(src + static_cast<int64_t>(r) * src_stride + col, width,
                dst + static_cast<int64_t>(r) * width);
  }
}

void Scatter(const float* src, int rows, int width, float* dst, int dst_stride, int col) {
  for (int r = 0; r < rows; ++r) {
    std::copy_n(src + static_cast<int64_t>(r) * width, width,
                dst + static_cast<int64_t>(r) * dst_stride + col);
  }
}

void Rope(float* x, int heads, int dim, const LayerContext& ctx) {
  kernels::RopeCpu({.x = x,
                    .positions = ctx.step.positions.data(),
                    .inv_freq = ctx.rope.inv_freq.data(),
                    .num_tokens = ctx.step.num_tokens,
                    .num_heads = heads,
                    .head_dim = dim,
                    .attention_scale = ctx.rope.attention_scale,
                    .interleaved = ctx.config.mla.rope_interleave});
}

// q[T, H · (nope + rope)] from the normed input, with each head's rope part rotated.
std::vector<float> Queries(const MlaWeights& w, const LayerContext& ctx, const float* x) {
  const MlaConfig& m = ctx.config.mla;
  const int t = ctx.step.num_tokens;
  const int heads = ctx.dims.q_heads;
  const int qk = m.qk_head_dim();
  std::vector<float> q(static_cast<size_t>(t) * heads * qk);
  if (m.q_lora_rank > 0) {
    std::vector<float> qa(static_cast<size_t>(t) * m.q_lora_rank);
    Linear(x, w.q_a, w.q_a_bias, qa.data(), t, m.q_lora_rank, ctx.config.hidden_size);
    kernels::RmsNormCpu({.x = qa.data(),
                         .weight = w.q_a_norm.data(),
                         .out = qa.data(),
                         .rows = t,
                         .cols = m.q_lora_rank,
                         .eps = kLoraNormEps});
    Linear(qa.data(), w.q_b, {}, q.data(), t, heads * qk, m.q_lora_rank);
  } else {
    Linear(x, w.q_b, {}, q.data(), t, heads * qk, ctx.config.hidden_size);
  }
  std::vector<float> rope(static_cast<size_t>(t) * heads * m.qk_rope_head_dim);
  Gather(q.data(), t * heads, qk, m.qk_nope_head_dim, m.qk_rope_head_dim, rope.data());
  Rope(rope.data(), heads, m.qk_rope_head_dim, ctx);
  Scatter(rope.data(), t * heads, m.qk_rope_head_dim, q.data(), qk, m.qk_nope_head_dim);
  return q;
}

// Cache rows [T, kv_lora + rope]: the normed latent, then the rotated rope key.
std::vector<float> LatentRows(const MlaWeights& w, const LayerContext& ctx, const float* x) {
  const MlaConfig& m = ctx.config.mla;
  const int t = ctx.step.num_tokens;
  const int row = m.latent_row();
  std::vector<float> rows(static_cast<size_t>(t) * row);
  Linear(x, w.kv_a, w.kv_a_bias, rows.data(), t, row, ctx.config.hidden_size);
  std::vector<float> part(static_cast<size_t>(t) * m.kv_lora_rank);
  Gather(rows.data(), t, row, 0, m.kv_lora_rank, part.data());
  kernels::RmsNormCpu({.x = part.data(),
                       .weight = w.kv_a_norm.data(),
                       .out = part.data(),
                       .rows = t,
                       .cols = m.kv_lora_rank,
                       .eps = kLoraNormEps});
  Scatter(part.data(), t, m.kv_lora_rank, rows.data(), row, 0);
  part.resize(static_cast<size_t>(t) * m.qk_rope_head_dim);
  Gather(rows.data(), t, row, m.kv_lora_rank, m.qk_rope_head_dim, part.data());
  Rope(part.data(), 1, m.qk_rope_head_dim, ctx);
  Scatter(part.data(), t, m.qk_rope_head_dim, rows.data(), row, m.kv_lora_rank);
  return rows;
}

}  // namespace

void AbsorbQuery(const MlaWeights& w, const MlaConfig& m, int num_tokens, int num_heads,
                 const float* q, float* q_latent) {
  const int qk = m.qk_head_dim(), row = m.latent_row(), lora = m.kv_lora_rank;
  const int nope = m.qk_nope_head_dim;
  std::vector<float> q_nope(static_cast<size_t>(num_tokens) * nope);
  std::vector<float> absorbed(static_cast<size_t>(num_tokens) * lora);
  for (int h = 0; h < num_heads; ++h) {
    Gather(q, num_tokens, num_heads * qk, h * qk, nope, q_nope.data());
    kernels::LinearCpu({.x = q_nope.data(),
                        .w = w.w_uk_t.data() + static_cast<int64_t>(h) * lora * nope,
                        .y = absorbed.data(),
                        .m = num_tokens,
                        .n = lora,
                        .k = nope});
    Scatter(absorbed.data(), num_tokens, lora, q_latent, num_heads * row, h * row);
    for (int t = 0; t < num_tokens; ++t) {
      std::copy_n(q + (static_cast<int64_t>(t) * num_heads + h) * qk + nope, m.qk_rope_head_dim,
                  q_latent + (static_cast<int64_t>(t) * num_heads + h) * row + lora);
    }
  }
}

void UpProjectValues(const MlaWeights& w, const MlaConfig& m, int num_tokens, int num_heads,
                     const float* latent, float* out) {
  const int lora = m.kv_lora_rank, v = m.v_head_dim;
  std::vector<float> head(static_cast<size_t>(num_tokens) * lora);
  std::vector<float> values(static_cast<size_t>(num_tokens) * v);
  for (int h = 0; h < num_heads; ++h) {
    Gather(latent, num_tokens, num_heads * lora, h * lora, lora, head.data());
    kernels::LinearCpu({.x = head.data(),
                        .w = w.w_uv.data() + static_cast<int64_t>(h) * v * lora,
                        .y = values.data(),
                        .m = num_tokens,
                        .n = v,
                        .k = lora});
    Scatter(values.data(), num_tokens, v, out, num_heads * v, h * v);
  }
}

absl::Status RunMlaDecoderLayer(const LayerWeights& w, int layer, bool first,
                                const LayerContext& ctx, LayerWorkspace& ws, Collectives& comm) {
  const ModelConfig& c = ctx.config;
  const MlaConfig& m = c.mla;
  const StepMetadata& step = ctx.step;
  const int t = step.num_tokens;
  const int heads = ctx.dims.q_heads;

  // Attention block.
  AddAndNorm(ws, w.input_norm, /*add=*/!first, t, c);
  if (c.dms.enabled) AdapterDecisions(w, ctx, ws);  // ws.alpha[T, 1]
  const std::vector<float> q = Queries(w.mla, ctx, ws.normed.data());
  const std::vector<float> rows = LatentRows(w.mla, ctx, ws.normed.data());
  std::vector<float> q_latent(static_cast<size_t>(t) * heads * m.latent_row());
  AbsorbQuery(w.mla, m, t, heads, q.data(), q_latent.data());
  const int32_t* streams = step.token_stream[layer].data();
  kernels::KvWriteCpu({.cache = ctx.cache,
                       .k = rows.data(),
                       .v = nullptr,
                       .alpha = ctx.write_decisions ? ws.alpha.data() : nullptr,
                       .token_stream = streams,
                       .positions = step.positions.data(),
                       .num_tokens = t,
                       .num_kv_heads = 1});
  std::vector<float> latent(static_cast<size_t>(t) * heads * m.kv_lora_rank);
  kernels::MlaAttentionCpu({.cache = ctx.cache,
                            .q = q_latent.data(),
                            .out = latent.data(),
                            .token_stream = streams,
                            .positions = step.positions.data(),
                            .num_tokens = t,
                            .num_heads = heads,
                            .latent_dim = m.kv_lora_rank,
                            .scale = m.softmax_scale});
  std::vector<float> attn(static_cast<size_t>(t) * heads * m.v_head_dim);
  UpProjectValues(w.mla, m, t, heads, latent.data(), attn.data());
  Linear(attn.data(), w.o_proj, w.o_bias, ws.delta.data(), t, c.hidden_size, heads * m.v_head_dim);
  RAMI_RETURN_IF_ERROR(comm.AllReduceSum(ws.delta.data(), ws.delta.size()));

  // Dense MLP or mixture of experts.
  AddAndNorm(ws, w.post_norm, /*add=*/true, t, c);
  if (c.moe.IsMoeLayer(layer)) return RunMoe(w.moe, ctx, ws, comm);
  return RunDenseMlp(w, ctx, ws, comm);
}

}  // namespace rami::cpu
