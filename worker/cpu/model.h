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
#include "worker/engine/rope_table.h"
#include "worker/kv/kv_cache.h"

namespace rami::cpu {

class Model : public engine::ForwardBackend {
 public:
  // Reads config.json and this rank's shard of the weights from a Hugging Face model dir.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& dir,
                                                     const checkpoint::ShardSpec& shard);

  // A model of `config`'s shape for `shard` with no weights: config, shard dims
  // (ShardDims::Make: InvalidArgument when the shard does not divide the model) and RoPE table
  // only, for backends that bring their own weights (cuda::CudaModel::Create with
  // cuda::DeviceWeights, e.g. DeviceWeights::Random in rami-bench). Reserve, MakeCache and
  // KvPageBytes work as for a loaded model; Forward and RunReserved refuse to run
  // (FailedPrecondition; RunReserved returns the reservation).
  static absl::StatusOr<std::unique_ptr<Model>> ShapeOnly(const checkpoint::ModelConfig& config,
                                                          const checkpoint::ShardSpec& shard);

  const checkpoint::ModelConfig& config() const override { return config_; }
  // False for a ShapeOnly model.
  bool has_weights() const { return !weights_.layers.empty(); }
  const checkpoint::ShardDims& dims() const { return weights_.dims; }
  // This rank's fp32 shard (the CUDA backend uploads it; empty but for dims when ShapeOnly) and
  // its RoPE table.
  const checkpoint::ModelWeights& weights() const { return weights_; }
  const engine::RopeTable& rope() const { return rope_; }

  // The checkpoint's own policy: dms for a DMS checkpoint (dense when it sets
  // dms_disable_eviction), dense otherwise.
  kv::CachePolicy DefaultCachePolicy() const;
  // A KV cache shaped for this rank (its local KV heads). InvalidArgument for a bad pool or
  // policy (dms needs a DMS checkpoint).
  absl::StatusOr<std::unique_ptr<kv::KvCache>> MakeCache(const kv::KvPoolConfig& pool,
                                                         const kv::CachePolicy& policy) const;
  // Bytes of one KV page of `page_size` tokens on the CPU backend (fp32): K and V rows of
  // head_dim, or MLA's one K-only latent row (kv_lora_rank + qk_rope_head_dim). For sizing the
  // pool from a byte budget.
  int64_t KvPageBytes(int page_size) const;

  // Runs one step. Every chunk's sequence must exist in `cache`, appear once, and carry at
  // least one token id in [0, vocab_size). Validation and page reservation happen before the
  // first collective; on error the cache's sequences are as they were before the step.
  absl::StatusOr<engine::ForwardResult> Forward(absl::Span<const engine::SequenceChunk> chunks,
                                                kv::KvCache& cache,
                                                collectives::Collectives& comm) const;
  // Forward in two halves, for callers that must agree across ranks in between: Reserve
  // validates the chunks and reserves their pages (no collective); RunReserved runs the step
  // and commits it, or on error returns the reservation (the sequences are as before).
  absl::Status Reserve(absl::Span<const engine::SequenceChunk> chunks,
                       kv::KvCache& cache) const override;
  absl::StatusOr<engine::ForwardResult> RunReserved(absl::Span<const engine::SequenceChunk> chunks,
                                                    kv::KvCache& cache,
                                                    collectives::Collectives& comm) const override;

 private:
  Model(checkpoint::ModelConfig config, checkpoint::ModelWeights weights);
  // FailedPrecondition for a ShapeOnly model (no weights to run).
  absl::Status CheckHasWeights() const;
  // The step after reservation: plan, layers, logits.
  absl::StatusOr<engine::ForwardResult> Run(absl::Span<const engine::SequenceChunk> chunks,
                                            kv::KvCache& cache,
                                            collectives::Collectives& comm) const;

  checkpoint::ModelConfig config_;
  checkpoint::ModelWeights weights_;
  engine::RopeTable rope_;
};

}  // namespace rami::cpu
