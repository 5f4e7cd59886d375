// Multi-head latent attention (DeepSeek MLA) in the weight-absorbed form, over a K-only paged
// cache whose rows are [latent (kv_lora_rank) | rope key (qk_rope_head_dim)], one stream per
// (sequence, layer) shared by every query head (KvStreamsView with num_kv_heads 1; same
// kept/window layout and DMS visibility rule as paged_attention.h).
//
// The caller has absorbed each head's key up-projection into its query:
//   q[t, h] = [W_uk_h^T · q_nope[t, h] | rope(q_rope[t, h])]          (kv_lora + rope values)
// so the score of cached row r is q[t, h] · r (= q_nope·k_nope + q_rope·k_rope of the
// expanded form), and the output is the softmax-weighted sum of the rows' latent parts:
//   out[t, h] = Σ_r softmax(scale · q[t, h] · r) · r[:kv_lora]
// which the caller up-projects with W_uv_h. The cache thus holds kv_lora + rope values per
// token and layer instead of heads × (qk_head_dim + v_head_dim).
#pragma once

#include <cstdint>

#include "kernels/paged_attention.h"

namespace rami::kernels {

struct MlaAttentionParams {
  KvStreamsView cache;                    // K-only, head_dim = latent_dim + rope_dim
  const float* q = nullptr;               // [num_tokens, num_heads, latent_dim + rope_dim]
  float* out = nullptr;                   // [num_tokens, num_heads, latent_dim]
  const int32_t* token_stream = nullptr;  // [num_tokens] the (sequence, layer) stream; < 0: padding
  const int32_t* positions = nullptr;     // [num_tokens]
  int num_tokens = 0;
  int num_heads = 0;
  int latent_dim = 0;  // kv_lora_rank; the row's first latent_dim values act as the value
  float scale = 1.0f;  // qk_head_dim^-0.5 · mscale²
};

void MlaAttentionCpu(const MlaAttentionParams& p);

}  // namespace rami::kernels
