// One DeepSeek-V2/V3 decoder layer on the CPU backend — multi-head latent attention (MLA) in
// the weight-absorbed form, then a dense MLP or the mixture of experts:
//   x = RMSNorm(residual); [DMS-MLA adapter decision, one per token];
//   q = q_b(RMSNorm(q_a(x))) or q_proj(x)  → per head [q_nope | q_rope]
//   [c | k_rope] = kv_a_proj_with_mqa(x);  c = RMSNorm(c);  rope(k_rope), rope(q_rope)
//   cache row [c | k_rope] (kv_lora + rope values per token and layer, K-only cache)
//   q_h ← [W_uk_hᵀ q_nope_h | q_rope_h];  o_h = W_uv_h · Σ softmax(scale · q_h · row) row[:kv_lora]
//   residual += AllReduce(o_proj(o));  x = RMSNorm(residual);  residual += AllReduce(FFN(x))
// Prefill and decode take the same absorbed path (prefill may use either form; one path keeps
// chunking invariant). Tensor parallelism: query heads split, the latent replicated.
#pragma once

#include "absl/status/status.h"
#include "worker/collectives/collectives.h"
#include "worker/cpu/decoder_layer.h"

namespace rami::cpu {

absl::Status RunMlaDecoderLayer(const checkpoint::LayerWeights& w, int layer, bool first,
                                const LayerContext& ctx, LayerWorkspace& ws,
                                collectives::Collectives& comm);

// The absorbed projections on their own (for tests): q_latent[T, H, kv_lora + rope] from
// q[T, H, nope + rope] (q_rope already rotated), and out[T, H · v] from latent[T, H, kv_lora].
void AbsorbQuery(const checkpoint::MlaWeights& w, const checkpoint::MlaConfig& m, int num_tokens,
                 int num_heads, const float* q, float* q_latent);
void UpProjectValues(const checkpoint::MlaWeights& w, const checkpoint::MlaConfig& m,
                     int num_tokens, int num_heads, const float* latent, float* out);

}  // namespace rami::cpu
