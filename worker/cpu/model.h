// Model: one tensor-parallel rank of a decoder (Llama, Qwen2, Qwen3; DeepSeek-V2/V3 with MLA
// and MoE) on the CPU backend, and its forward pass over a ragged batch of sequence chunks (prefill
// chunks and decode tokens mixed) with KV in a paged cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/checkpoint/model_config.h"
#include "worker/checkpoint/weights.h"
#include "worker/collectives/collectives.h"
#include "worker/engine/forward_backend.h"
#include "worker/engine/model_shape.h"
#include "worker/kv/kv_cache.h"

namespace rami::cpu {

class Model : public engine::ForwardBackend {
 public:
  // Reads config.json and this rank's shard of the weights from a Hugging Face model dir.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& dir,
                                                     const checkpoint::ShardSpec& shard);

  // `shape`'s model with `weights`, this rank's fp32 shard of it (LoadWeights).
  Model(engine::ModelShape shape, checkpoint::ModelWeights weights);

  const engine::ModelShape& shape() const override { return shape_; }
  const checkpoint::ShardDims& dims() const { return shape_.dims(); }
  const checkpoint::ModelWeights& weights() const { return weights_; }

  // Runs one step. Every chunk's sequence must exist in `cache`, appear once, and carry at
  // least one token id in [0, vocab_size). Validation and page reservation happen before the
  // first collective; on error the cache's sequences are as they were before the step.
  absl::StatusOr<engine::ForwardResult> Forward(absl::Span<const engine::SequenceChunk> chunks,
                                                kv::KvCache& cache,
                                                collectives::Collectives& comm) const;
  // Forward in two halves, for callers that must agree across ranks in between: Reserve
  // (ModelShape::Reserve) validates the chunks and reserves their pages (no collective);
  // RunReserved runs the step and commits it, or on error returns the reservation (the
  // sequences are as before).
  absl::StatusOr<engine::ForwardResult> RunReserved(absl::Span<const engine::SequenceChunk> chunks,
                                                    kv::KvCache& cache,
                                                    collectives::Collectives& comm) const override;

 private:
  // The step after reservation: plan, layers, logits.
  absl::StatusOr<engine::ForwardResult> Run(absl::Span<const engine::SequenceChunk> chunks,
                                            kv::KvCache& cache,
                                            collectives::Collectives& comm) const;
  // Full-vocabulary fp32 logits [tokens.size(), vocab] of the step rows `tokens` of `normed`
  // [T, hidden] (the final norm's output), gathered over the ranks.
  absl::StatusOr<std::vector<float>> LogitsOf(const std::vector<float>& normed,
                                              absl::Span<const int32_t> tokens,
                                              collectives::Collectives& comm) const;
  // The chunks' prompt scores (score_top_n) into result->scored, kScoreSliceRows rows of
  // logits at a time (worker/engine/token_scores.h).
  absl::Status Score(absl::Span<const engine::SequenceChunk> chunks,
                     const std::vector<float>& normed, collectives::Collectives& comm,
                     engine::ForwardResult* result) const;

  engine::ModelShape shape_;
  checkpoint::ModelWeights weights_;
};

}  // namespace rami::cpu
