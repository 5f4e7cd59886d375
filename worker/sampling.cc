// Greedy selection.
#include "worker/sampling.h"

namespace rami {

int32_t GreedyToken(absl::Span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

}  // namespace rami
