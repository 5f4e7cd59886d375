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
  // Prompt scoring: ≥ 0 scores tokens 1 … n − 1 of the chunk, each from the row before it, with
  // this many top tokens (ForwardResult::scored; token 0 is the caller's: its row is the
  // previous step's). The scored rows need not be in `logits` (all_logits not needed).
  int score_top_n = -1;
};

}  // namespace rami::engine
