// RopeTable: the inverse frequencies and cos/sin scale of a model's RoPE variant (default,
// linear, llama3, yarn), computed once at load as transformers computes them.
#pragma once

#include <vector>

#include "worker/checkpoint/model_config.h"

namespace rami::engine {

struct RopeTable {
  std::vector<float> inv_freq;   // [head_dim / 2]
  float attention_scale = 1.0f;  // multiplies cos and sin (YaRN); 1 otherwise
};

RopeTable MakeRopeTable(const checkpoint::RopeConfig& rope, int head_dim);

}  // namespace rami::engine
