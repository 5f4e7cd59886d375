// SequenceChunk: a step's input for one sequence, as every backend takes it (forward_backend.h).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "worker/engine/sampler.h"
#include "worker/kv/kv_cache.h"

namespace rami::engine {

// New tokens of one sequence for one step: a prefill chunk or a single decode token. They
// are appended after the sequence's cached tokens.
struct SequenceChunk {
  kv::SeqId seq_id = 0;
  std::vector<int32_t> tokens;
  bool all_logits = false;  // logits of every token (else only of the last one)
  // The next token of the sequence, from the chunk's last row (`row` ignored; not with
  // all_logits). A backend that samples where its logits are (the CUDA one, on the device)
  // returns it in ForwardResult::sampled instead of the row; the others return the row and
  // the caller samples it.
  std::optional<SampleRequest> sample = std::nullopt;
};

}  // namespace rami::engine
