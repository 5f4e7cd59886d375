// ForwardBackend: what the Engine needs from a model shard to run a step — the CPU Model
// (worker/cpu/model.h) or the CUDA backend (worker/cuda/) — so that one Engine drives either. The
// KvCache passed in is the source of truth for page bookkeeping on both: the CPU backend keeps
// K/V in its pool, the CUDA backend in device memory laid out by the same page ids.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/checkpoint/model_config.h"
#include "worker/collectives/collectives.h"
#include "worker/engine/model_shape.h"
#include "worker/engine/sampler.h"
#include "worker/engine/sequence_chunk.h"
#include "worker/kv/kv_cache.h"

namespace rami::engine {

struct ForwardResult {
  int vocab_size = 0;
  std::vector<float> logits;       // [rows, vocab_size], full vocabulary on every rank
  std::vector<int32_t> first_row;  // [num_chunks] first logits row of each chunk; -1: sampled
  // [num_chunks] or empty: the chunks whose `sample` the backend took (their rows are not in
  // `logits`). Every rank returns the same tokens.
  std::vector<std::optional<SampledToken>> sampled;
  // [num_chunks] or empty: a chunk with score_top_n ≥ 0 gets tokens − 1 entries, entry i the
  // score of its token i + 1 under row i (worker/engine/token_scores.h); the others none.
  std::vector<std::vector<TokenScore>> scored;
};

class ForwardBackend {
 public:
  virtual ~ForwardBackend() = default;

  // The shard apart from its weights: config, dims, RoPE table, cache shape.
  virtual const ModelShape& shape() const = 0;
  const checkpoint::ModelConfig& config() const { return shape().config(); }
  // Validates the chunks and reserves their pages (no collective): ModelShape::Reserve.
  virtual absl::Status Reserve(absl::Span<const SequenceChunk> chunks, kv::KvCache& cache) const {
    return shape().Reserve(chunks, cache);
  }
  // Runs the reserved step and commits it, or returns the reservation on error.
  virtual absl::StatusOr<ForwardResult> RunReserved(absl::Span<const SequenceChunk> chunks,
                                                    kv::KvCache& cache,
                                                    collectives::Collectives& comm) const = 0;
  // The Engine changed these sequences outside a forward pass (freed, forked, snapshotted, or
  // copied before the step's reservation): a backend with device-side page tables resyncs them
  // before its next forward pass. The CPU backend reads the cache directly and ignores it.
  virtual void CacheChanged(absl::Span<const kv::SeqId> ids) const { (void)ids; }
};

}  // namespace rami::engine
