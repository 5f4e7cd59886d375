// CPU twin of RoPE (rotate-half or interleaved pairs). The angle is formed in float32 exactly as
// transformers does (float position × float inv_freq) so that long positions round the same way.
#include "kernels/rope.h"

#include <cmath>

namespace rami::kernels {

void RopeCpu(const RopeParams& p) {
  const int half = p.head_dim / 2;
  for (int t = 0; t < p.num_tokens; ++t) {
    const float pos = static_cast<float>(p.positions[t]);
    for (int i = 0; i < half; ++i) {
      const float angle = pos * p.inv_freq[i];
      const float c = std::cos(angle) * p.attention_scale;
      const float s = std::sin(angle) * p.attention_scale;
      for (int h = 0; h < p.num_heads; ++h) {
        float* x = p.x + (static_cast<int64_t>(t) * p.num_heads + h) * p.head_dim;
        const int i1 = p.interleaved ? 2 * i : i;
        const int i2 = p.interleaved ? 2 * i + 1 : i + half;
        const float x1 = x[i1];
        const float x2 = x[i2];
        x[i1] = x1 * c - x2 * s;
        x[i2] = x2 * c + x1 * s;
      }
    }
  }
}

}  // namespace rami::kernels
