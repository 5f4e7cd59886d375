// CPU twin of the fused QKV preparation: the CPU kernels composed in the decoder layer's order.
#include "kernels/qkv_prep.h"

#include <cstring>
#include <utility>

#include "kernels/dms_decision.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

namespace rami::kernels {

void QkvPrepCpu(const QkvPrepParams& p) {
  const int d = p.head_dim;
  const int q_width = p.num_q_heads * d, kv_width = p.num_kv_heads * d;
  for (int t = 0; t < p.num_tokens; ++t) {
    const float* src = p.qkv + static_cast<int64_t>(t) * (q_width + 2 * kv_width);
    std::memcpy(p.q + static_cast<int64_t>(t) * q_width, src, sizeof(float) * q_width);
    std::memcpy(p.k + static_cast<int64_t>(t) * kv_width, src + q_width, sizeof(float) * kv_width);
    std::memcpy(p.v + static_cast<int64_t>(t) * kv_width, src + q_width + kv_width,
                sizeof(float) * kv_width);
  }
  auto head_norm = [&](float* x, const float* weight, int heads) {
    if (weight == nullptr) return;
    RmsNormCpu({.x = x,
                .weight = weight,
                .out = x,
                .rows = p.num_tokens * heads,
                .cols = d,
                .eps = p.eps});
  };
  head_norm(p.q, p.q_norm, p.num_q_heads);
  head_norm(p.k, p.k_norm, p.num_kv_heads);
  const DmsQueryDecisionParams surgery{.q = p.q,
                                       .alpha = p.alpha,
                                       .num_tokens = p.num_tokens,
                                       .num_q_heads = p.num_q_heads,
                                       .num_kv_heads = p.num_kv_heads,
                                       .head_dim = d,
                                       .alpha_scale = p.alpha_scale,
                                       .alpha_offset = p.alpha_offset};
  if (p.alpha != nullptr) DmsQueryDecisionCpu(surgery);  // reads α, zeroes the channel
  for (auto [x, heads] : {std::pair{p.q, p.num_q_heads}, std::pair{p.k, p.num_kv_heads}}) {
    RopeCpu({.x = x,
             .positions = p.positions,
             .inv_freq = p.inv_freq,
             .num_tokens = p.num_tokens,
             .num_heads = heads,
             .head_dim = d,
             .attention_scale = p.attention_scale});
  }
  if (p.alpha != nullptr) DmsZeroDecisionChannelCpu(surgery);  // RoPE mixed it back in
}

}  // namespace rami::kernels
