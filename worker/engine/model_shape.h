// ModelShape: one tensor-parallel rank's shard of a model apart from its weights — the config,
// which rank of which world, the shard's dims and the RoPE table — and what follows from those
// alone: the checkpoint's own cache policy, a KV cache shaped for the shard, and the validation
// and page reservation of a step. Both backends are a shape plus weights (cpu::Model: fp32 host
// weights; cuda::CudaModel: device weights), so a backend never needs another backend's model.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/checkpoint/model_config.h"
#include "worker/checkpoint/shard_dims.h"
#include "worker/engine/rope_table.h"
#include "worker/engine/sequence_chunk.h"
#include "worker/kv/cache_policy.h"
#include "worker/kv/kv_cache.h"
#include "worker/kv/kv_page_pool.h"

namespace rami::engine {

class ModelShape {
 public:
  // InvalidArgument when `shard` is not a rank of a world that divides the model
  // (ShardDims::Make).
  static absl::StatusOr<ModelShape> Make(checkpoint::ModelConfig config,
                                         const checkpoint::ShardSpec& shard);

  const checkpoint::ModelConfig& config() const { return config_; }
  const checkpoint::ShardSpec& shard() const { return shard_; }
  const checkpoint::ShardDims& dims() const { return dims_; }
  const RopeTable& rope() const { return rope_; }

  // The checkpoint's own policy: dms for a DMS checkpoint (dense when it sets
  // dms_disable_eviction), dense otherwise.
  kv::CachePolicy DefaultCachePolicy() const;
  // A KV cache shaped for this rank: its local KV heads of head_dim (K and V), or MLA's one
  // K-only stream per (sequence, layer) of latent rows, replicated on every rank.
  // InvalidArgument for a bad pool or policy (dms needs a DMS checkpoint).
  absl::StatusOr<std::unique_ptr<kv::KvCache>> MakeCache(const kv::KvPoolConfig& pool,
                                                         const kv::CachePolicy& policy) const;
  // Values one cached token holds per stream: 2 · head_dim (K and V), or MLA's
  // kv_lora_rank + qk_rope_head_dim (K only).
  int64_t CacheValuesPerToken() const;
  // Bytes of one KV page of `page_size` tokens at `bytes_per_value` (4: the CPU backend's fp32).
  int64_t KvPageBytes(int page_size, int bytes_per_value) const;

  // Validates a step's chunks against `cache` (every sequence present, once, with at least one
  // token id in [0, vocab_size)) and reserves their pages. No collective.
  absl::Status Reserve(absl::Span<const SequenceChunk> chunks, kv::KvCache& cache) const;

 private:
  ModelShape(checkpoint::ModelConfig config, const checkpoint::ShardSpec& shard,
             const checkpoint::ShardDims& dims);

  checkpoint::ModelConfig config_;
  checkpoint::ShardSpec shard_;
  checkpoint::ShardDims dims_;
  RopeTable rope_;
};

}  // namespace rami::engine
