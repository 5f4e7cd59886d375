// CPU twin of the vocab-parallel embedding lookup.
#include "kernels/embedding.h"

#include <algorithm>
#include <cstring>

namespace rami::kernels {

void EmbeddingCpu(const EmbeddingParams& p) {
  for (int t = 0; t < p.num_tokens; ++t) {
    float* row = p.out + static_cast<int64_t>(t) * p.hidden;
    const int local = p.tokens[t] - p.vocab_start;
    if (local < 0 || local >= p.vocab_local) {
      std::fill(row, row + p.hidden, 0.0f);  // another rank owns this token
      continue;
    }
    std::memcpy(row, p.table + static_cast<int64_t>(local) * p.hidden, sizeof(float) * p.hidden);
  }
}

}  // namespace rami::kernels
