// ModelShape: the shard's dims and RoPE table at construction; caches and reservations.
#include "worker/engine/model_shape.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace rami::engine {

using checkpoint::ModelConfig;
using checkpoint::ShardDims;
using checkpoint::ShardSpec;
using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::KvCache;
using kv::KvPoolConfig;
using kv::SeqId;

ModelShape::ModelShape(ModelConfig config, const ShardSpec& shard, const ShardDims& dims)
    : config_(std::move(config)),
      shard_(shard),
      dims_(dims),
      rope_(MakeRopeTable(config_.rope, config_.head_dim)) {}

absl::StatusOr<ModelShape> ModelShape::Make(ModelConfig config, const ShardSpec& shard) {
  RAMI_ASSIGN_OR_RETURN(const ShardDims dims, ShardDims::Make(config, shard));
  return ModelShape(std::move(config), shard, dims);
}

CachePolicy ModelShape::DefaultCachePolicy() const {
  if (!config_.dms.enabled || config_.dms.disable_eviction) return CachePolicy::Dense();
  return CachePolicy::Dms(config_.dms.window_size);
}

absl::StatusOr<std::unique_ptr<KvCache>> ModelShape::MakeCache(const KvPoolConfig& pool,
                                                               const CachePolicy& policy) const {
  RAMI_RETURN_IF_ERROR(pool.Validate());
  RAMI_RETURN_IF_ERROR(policy.Validate());
  if (policy.kind == CachePolicyKind::kDms && !config_.dms.enabled) {
    return absl::InvalidArgumentError(
        "cache policy dms: the checkpoint is not a DMS checkpoint (no dms_* keys in "
        "config.json); use dense or window");
  }
  if (config_.mla.enabled) {
    // MLA: one K-only stream per (sequence, layer) holding [latent | rope key], replicated on
    // every rank (each rank's heads read the whole latent).
    return std::make_unique<KvCache>(pool, config_.num_layers, /*num_kv_heads=*/1,
                                     config_.mla.latent_row(), policy, /*store_values=*/false);
  }
  return std::make_unique<KvCache>(pool, config_.num_layers, dims_.kv_heads, config_.head_dim,
                                   policy);
}

int64_t ModelShape::CacheValuesPerToken() const {
  return config_.mla.enabled ? config_.mla.latent_row() : 2 * int64_t{config_.head_dim};
}

int64_t ModelShape::KvPageBytes(int page_size, int bytes_per_value) const {
  return int64_t{page_size} * CacheValuesPerToken() * bytes_per_value;
}

absl::Status ModelShape::Reserve(absl::Span<const SequenceChunk> chunks, KvCache& cache) const {
  if (chunks.empty()) return absl::InvalidArgumentError("step: no sequences");
  std::set<SeqId> seen;
  std::vector<std::pair<SeqId, int64_t>> appends;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const SequenceChunk& chunk = chunks[i];
    if (!cache.Contains(chunk.seq_id)) {
      return absl::NotFoundError(
          absl::StrCat("step: chunk ", i, ": unknown sequence ", chunk.seq_id));
    }
    if (!seen.insert(chunk.seq_id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: chunk ", i, ": sequence ", chunk.seq_id, " appears twice"));
    }
    if (chunk.tokens.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("step: chunk ", i, ": no tokens"));
    }
    for (int32_t token : chunk.tokens) {
      if (token < 0 || token >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("step: chunk ", i, ": token id ", token,
                                                       " outside [0, ", config_.vocab_size, ")"));
      }
    }
    appends.emplace_back(chunk.seq_id, static_cast<int64_t>(chunk.tokens.size()));
  }
  return cache.ReserveAppend(appends);
}

}  // namespace rami::engine
