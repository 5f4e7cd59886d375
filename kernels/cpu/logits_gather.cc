// LogitsGatherCpu: per output row, each rank's slice copied into its columns.
#include "kernels/logits_gather.h"

#include <algorithm>

namespace rami::kernels {

void LogitsGatherCpu(const LogitsGatherParams& p) {
  for (int k = 0; k < p.num_rows; ++k) {
    float* out = p.out + static_cast<int64_t>(k) * p.vocab;
    for (int rank = 0; rank < p.world; ++rank) {
      const int64_t first = static_cast<int64_t>(rank) * p.vocab_local;
      if (first >= p.vocab) break;
      const int64_t count = std::min<int64_t>(p.vocab_local, p.vocab - first);
      const float* in =
          p.in + (static_cast<int64_t>(rank) * p.rows_per_rank + p.rows[k]) * p.vocab_local;
      std::copy_n(in, count, out + first);
    }
  }
}

}  // namespace rami::kernels
