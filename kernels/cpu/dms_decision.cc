// CPU twins of the DMS decision reads.
#include "kernels/dms_decision.h"

#include <cstdint>

#include "kernels/linear.h"

namespace rami::kernels {
namespace {

inline uint8_t Decide(float value, float scale, float offset) {
  return value * scale - offset > 0.0f ? 1 : 0;
}

// Address of the borrowed channel of KV head h for token t.
inline float* Channel(const DmsQueryDecisionParams& p, int t, int h) {
  const int group = p.num_q_heads / p.num_kv_heads;
  return p.q + (static_cast<int64_t>(t) * p.num_q_heads + h * group) * p.head_dim +
         (p.head_dim - 1);
}

}  // namespace

void DmsQueryDecisionCpu(const DmsQueryDecisionParams& p) {
  for (int t = 0; t < p.num_tokens; ++t) {
    for (int h = 0; h < p.num_kv_heads; ++h) {
      float* channel = Channel(p, t, h);
      p.alpha[static_cast<int64_t>(t) * p.num_kv_heads + h] =
          Decide(*channel, p.alpha_scale, p.alpha_offset);
      *channel = 0.0f;
    }
  }
}

void DmsZeroDecisionChannelCpu(const DmsQueryDecisionParams& p) {
  for (int t = 0; t < p.num_tokens; ++t) {
    for (int h = 0; h < p.num_kv_heads; ++h) *Channel(p, t, h) = 0.0f;
  }
}

void DmsLogitDecisionCpu(const DmsLogitDecisionParams& p) {
  for (int i = 0; i < p.count; ++i) p.alpha[i] = Decide(p.logits[i], p.alpha_scale, p.alpha_offset);
}

void DmsAdapterDecisionCpu(const DmsAdapterParams& p) {
  LinearCpu({.x = p.x,
             .w = p.w,
             .bias = p.bias,
             .y = p.logits,
             .m = p.num_tokens,
             .n = p.num_kv_heads,
             .k = p.hidden});
  DmsLogitDecisionCpu({.logits = p.logits,
                       .alpha = p.alpha,
                       .count = p.num_tokens * p.num_kv_heads,
                       .alpha_scale = p.alpha_scale,
                       .alpha_offset = p.alpha_offset});
}

void DmsHeadZeroToFloatCpu(const DmsHeadZeroParams& p) {
  for (int t = 0; t < p.num_tokens; ++t) {
    p.shared[t] =
        p.contribute ? static_cast<float>(p.alpha[static_cast<int64_t>(t) * p.num_kv_heads]) : 0.0f;
  }
}

void DmsSpreadHeadZeroCpu(const DmsHeadZeroParams& p) {
  for (int t = 0; t < p.num_tokens; ++t) {
    for (int h = 0; h < p.num_kv_heads; ++h) {
      p.alpha[static_cast<int64_t>(t) * p.num_kv_heads + h] = p.shared[t] > 0.5f ? 1 : 0;
    }
  }
}

}  // namespace rami::kernels
