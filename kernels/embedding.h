// Embedding lookup (vocab-parallel): each rank holds rows [vocab_start, vocab_start +
// vocab_local) of the table; tokens outside that range produce zero rows, so summing the
// ranks' outputs (all-reduce) gives the full embedding.
#pragma once

#include <cstdint>

namespace rami::kernels {

struct EmbeddingParams {
  const int32_t* tokens = nullptr;  // [num_tokens]
  const float* table = nullptr;     // [vocab_local, hidden]
  float* out = nullptr;             // [num_tokens, hidden]
  int num_tokens = 0;
  int hidden = 0;
  int vocab_start = 0;
  int vocab_local = 0;
};

void EmbeddingCpu(const EmbeddingParams& p);

}  // namespace rami::kernels
