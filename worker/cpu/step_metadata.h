// StepMetadata: everything about one forward step that does not depend on the layer's
// activations — token ids, positions, the streams' page lists, which rows get logits —
// planned once per step on the host and read by every layer (plan once, run per
// layer).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "worker/engine/sequence_chunk.h"
#include "worker/kv/kv_cache.h"

namespace rami::cpu {

struct StepMetadata {
  int num_tokens = 0;
  std::vector<int32_t> tokens;     // [num_tokens] chunks concatenated in batch order
  std::vector<int32_t> positions;  // [num_tokens] absolute position in its sequence
  // [num_layers][num_tokens] stream of KV head 0 of the token's (sequence, layer).
  std::vector<std::vector<int32_t>> token_stream;
  kv::StepStreams streams;
  std::vector<int32_t> logit_tokens;  // token indices whose logits are returned, in order
  std::vector<int32_t> first_row;     // [num_chunks] first logits row of each chunk
};

// Plans a step whose chunks were already validated and whose pages are reserved.
StepMetadata PlanStep(absl::Span<const engine::SequenceChunk> chunks, kv::KvCache& cache);

}  // namespace rami::cpu
