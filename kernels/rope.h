// Rotary position embedding, rotate-half ("neox") form as Llama and Qwen use it:
//   x1 = x[:D/2], x2 = x[D/2:]
//   x1' = x1·cos − x2·sin,  x2' = x2·cos + x1·sin,  angle_i = position · inv_freq[i]
// `interleaved` (DeepSeek): pairs (x[2i], x[2i+1]) rotate by angle_i instead, in place.
// cos and sin are multiplied by attention_scale (YaRN's attention factor; 1 otherwise).
// Scaling variants (llama3, yarn) only change inv_freq and attention_scale, computed once
// per model on the host.
#pragma once

#include <cstdint>

namespace rami::kernels {

struct RopeParams {
  float* x = nullptr;                  // [num_tokens, num_heads, head_dim], rotated in place
  const int32_t* positions = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;     // [head_dim / 2]
  int num_tokens = 0;
  int num_heads = 0;
  int head_dim = 0;
  float attention_scale = 1.0f;
  bool interleaved = false;
};

void RopeCpu(const RopeParams& p);

}  // namespace rami::kernels
