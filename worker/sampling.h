// Token selection from logits. Greedy for now; temperature/top-k/top-p/min-p sampling with
// per-sequence seeds arrives with the worker's step plans.
#pragma once

#include <cstdint>

#include "absl/types/span.h"

namespace rami {

// Index of the largest logit; the lowest index wins a tie (as torch.argmax does).
int32_t GreedyToken(absl::Span<const float> logits);

}  // namespace rami
