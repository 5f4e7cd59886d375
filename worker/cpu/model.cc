// Model loading and the step: validate, reserve pages, plan, embed, run the layers, logits.
#include "worker/cpu/model.h"
#include "worker/checkpoint/config_parser.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "worker/checkpoint/checkpoint.h"
#include "worker/cpu/decoder_layer.h"
#include "worker/cpu/mla_layer.h"
#include "worker/cpu/step_metadata.h"

namespace rami::cpu {

using checkpoint::ParseModelConfig;

using checkpoint::Checkpoint;
using checkpoint::LoadWeights;
using checkpoint::ModelConfig;
using checkpoint::ModelWeights;
using checkpoint::ShardDims;
using checkpoint::ShardSpec;
using collectives::Collectives;
using engine::ForwardResult;
using engine::MakeRopeTable;
using engine::SequenceChunk;
using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::KvCache;
using kv::KvPoolConfig;
using kv::SeqId;

namespace {

absl::Status ValidateChunks(absl::Span<const SequenceChunk> chunks, const KvCache& cache,
                            int vocab_size) {
  if (chunks.empty()) return absl::InvalidArgumentError("step: no sequences");
  std::set<SeqId> seen;
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
      if (token < 0 || token >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("step: chunk ", i, ": token id ", token,
                                                       " outside [0, ", vocab_size, ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

Model::Model(ModelConfig config, ModelWeights weights)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      rope_(MakeRopeTable(config_.rope, config_.head_dim)) {}

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir, const ShardSpec& shard) {
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(dir));
  RAMI_ASSIGN_OR_RETURN(ModelConfig config,
                        ParseModelConfig(checkpoint->config(), dir + "/config.json"));
  RAMI_ASSIGN_OR_RETURN(ModelWeights weights, LoadWeights(*checkpoint, config, shard));
  return std::unique_ptr<Model>(new Model(std::move(config), std::move(weights)));
}

absl::StatusOr<std::unique_ptr<Model>> Model::ShapeOnly(const ModelConfig& config,
                                                        const ShardSpec& shard) {
  ModelWeights weights;
  RAMI_ASSIGN_OR_RETURN(weights.dims, ShardDims::Make(config, shard));
  return std::unique_ptr<Model>(new Model(config, std::move(weights)));
}

CachePolicy Model::DefaultCachePolicy() const {
  if (!config_.dms.enabled || config_.dms.disable_eviction) return CachePolicy::Dense();
  return CachePolicy::Dms(config_.dms.window_size);
}

absl::StatusOr<std::unique_ptr<KvCache>> Model::MakeCache(const KvPoolConfig& pool,
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
  return std::make_unique<KvCache>(pool, config_.num_layers, weights_.dims.kv_heads,
                                   config_.head_dim, policy);
}

int64_t Model::KvPageBytes(int page_size) const {
  const int64_t row = config_.mla.enabled ? config_.mla.latent_row() : 2 * config_.head_dim;
  return int64_t{page_size} * row * static_cast<int64_t>(sizeof(float));
}

absl::Status Model::Reserve(absl::Span<const SequenceChunk> chunks, KvCache& cache) const {
  RAMI_RETURN_IF_ERROR(ValidateChunks(chunks, cache, config_.vocab_size));
  std::vector<std::pair<SeqId, int64_t>> appends;
  for (const SequenceChunk& chunk : chunks) {
    appends.emplace_back(chunk.seq_id, static_cast<int64_t>(chunk.tokens.size()));
  }
  return cache.ReserveAppend(appends);
}

absl::StatusOr<ForwardResult> Model::RunReserved(absl::Span<const SequenceChunk> chunks,
                                                 KvCache& cache, Collectives& comm) const {
  // Only collectives (or a ShapeOnly model) can fail here: the cache changes only when the
  // step succeeded.
  absl::StatusOr<ForwardResult> result = Run(chunks, cache, comm);
  for (const SequenceChunk& chunk : chunks) {
    if (result.ok()) {
      cache.CommitAppend(chunk.seq_id, static_cast<int64_t>(chunk.tokens.size()));
    } else {
      cache.AbortAppend(chunk.seq_id);
    }
  }
  return result;
}

absl::StatusOr<ForwardResult> Model::Forward(absl::Span<const SequenceChunk> chunks, KvCache& cache,
                                             Collectives& comm) const {
  RAMI_RETURN_IF_ERROR(CheckHasWeights());  // before reserving anything
  RAMI_RETURN_IF_ERROR(Reserve(chunks, cache));
  return RunReserved(chunks, cache, comm);
}

absl::Status Model::CheckHasWeights() const {
  if (has_weights()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "CPU backend: this model has no weights (Model::ShapeOnly): it cannot run a step");
}

absl::StatusOr<ForwardResult> Model::Run(absl::Span<const SequenceChunk> chunks, KvCache& cache,
                                         Collectives& comm) const {
  RAMI_RETURN_IF_ERROR(CheckHasWeights());  // RunReserved then returns the reservation
  const StepMetadata step = PlanStep(chunks, cache);
  const ShardDims& d = weights_.dims;
  const int t = step.num_tokens;
  const int hidden = config_.hidden_size;

  LayerWorkspace ws;
  ws.Resize(t, config_, d);
  kernels::EmbeddingCpu({.tokens = step.tokens.data(),
                         .table = weights_.embed.data(),
                         .out = ws.residual.data(),
                         .num_tokens = t,
                         .hidden = hidden,
                         .vocab_start = d.vocab_start,
                         .vocab_local = d.vocab});
  RAMI_RETURN_IF_ERROR(comm.AllReduceSum(ws.residual.data(), ws.residual.size()));

  const LayerContext ctx{config_,
                         d,
                         rope_,
                         step,
                         cache.View(step.streams),
                         /*write_decisions=*/cache.policy().kind == CachePolicyKind::kDms};
  for (int layer = 0; layer < config_.num_layers; ++layer) {
    const auto run = config_.mla.enabled ? &RunMlaDecoderLayer : &RunDecoderLayer;
    RAMI_RETURN_IF_ERROR(run(weights_.layers[layer], layer, /*first=*/layer == 0, ctx, ws, comm));
  }

  // Final norm and LM head, only for the rows that return logits.
  const int rows = static_cast<int>(step.logit_tokens.size());
  std::vector<float> selected(static_cast<size_t>(rows) * hidden);
  kernels::RmsNormCpu({.x = ws.delta.data(),
                       .residual = ws.residual.data(),
                       .weight = weights_.final_norm.data(),
                       .out = ws.normed.data(),
                       .rows = t,
                       .cols = hidden,
                       .eps = static_cast<float>(config_.rms_norm_eps)});
  for (int r = 0; r < rows; ++r) {
    std::copy_n(ws.normed.begin() + static_cast<int64_t>(step.logit_tokens[r]) * hidden, hidden,
                selected.begin() + static_cast<int64_t>(r) * hidden);
  }
  std::vector<float> local(static_cast<size_t>(rows) * d.vocab);
  kernels::LinearCpu({.x = selected.data(),
                      .w = weights_.lm_head_or_embed().data(),
                      .y = local.data(),
                      .m = rows,
                      .n = d.vocab,
                      .k = hidden});
  // Vocab-parallel: gather [world][rows][vocab_local], then lay it out as [rows][vocab].
  const int world = comm.world_size();
  std::vector<float> gathered(local.size() * world);
  RAMI_RETURN_IF_ERROR(comm.AllGather(local.data(), local.size(), gathered.data()));
  ForwardResult result;
  result.vocab_size = config_.vocab_size;
  result.logits.resize(static_cast<size_t>(rows) * config_.vocab_size);
  for (int r = 0; r < world; ++r) {
    for (int row = 0; row < rows; ++row) {
      std::copy_n(gathered.begin() + (static_cast<int64_t>(r) * rows + row) * d.vocab, d.vocab,
                  result.logits.begin() + static_cast<int64_t>(row) * config_.vocab_size +
                      static_cast<int64_t>(r) * d.vocab);
    }
  }
  result.first_row = step.first_row;
  return result;
}

}  // namespace rami::cpu
