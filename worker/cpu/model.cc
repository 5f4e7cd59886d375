// Model loading and the step: validate, reserve pages, plan, embed, run the layers, logits.
#include "worker/cpu/model.h"
#include "worker/checkpoint/config_parser.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/logits_gather.h"
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

Model::Model(engine::ModelShape shape, ModelWeights weights)
    : shape_(std::move(shape)), weights_(std::move(weights)) {}

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir, const ShardSpec& shard) {
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(dir));
  RAMI_ASSIGN_OR_RETURN(ModelConfig config,
                        ParseModelConfig(checkpoint->config(), dir + "/config.json"));
  RAMI_ASSIGN_OR_RETURN(ModelWeights weights, LoadWeights(*checkpoint, config, shard));
  RAMI_ASSIGN_OR_RETURN(engine::ModelShape shape,
                        engine::ModelShape::Make(std::move(config), shard));
  return std::make_unique<Model>(std::move(shape), std::move(weights));
}

absl::StatusOr<ForwardResult> Model::RunReserved(absl::Span<const SequenceChunk> chunks,
                                                 KvCache& cache, Collectives& comm) const {
  // Only collectives can fail here: the cache changes only when the step succeeded.
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
  RAMI_RETURN_IF_ERROR(Reserve(chunks, cache));
  return RunReserved(chunks, cache, comm);
}

absl::StatusOr<ForwardResult> Model::Run(absl::Span<const SequenceChunk> chunks, KvCache& cache,
                                         Collectives& comm) const {
  const StepMetadata step = PlanStep(chunks, cache);
  const ModelConfig& config = shape_.config();
  const ShardDims& d = shape_.dims();
  const int t = step.num_tokens;
  const int hidden = config.hidden_size;

  LayerWorkspace ws;
  ws.Resize(t, config, d);
  kernels::EmbeddingCpu({.tokens = step.tokens.data(),
                         .table = weights_.embed.data(),
                         .out = ws.residual.data(),
                         .num_tokens = t,
                         .hidden = hidden,
                         .vocab_start = d.vocab_start,
                         .vocab_local = d.vocab});
  RAMI_RETURN_IF_ERROR(comm.AllReduceSum(ws.residual.data(), ws.residual.size()));

  const LayerContext ctx{config,
                         d,
                         shape_.rope(),
                         step,
                         cache.View(step.streams),
                         /*write_decisions=*/cache.policy().kind == CachePolicyKind::kDms};
  for (int layer = 0; layer < config.num_layers; ++layer) {
    const auto run = config.mla.enabled ? &RunMlaDecoderLayer : &RunDecoderLayer;
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
                       .eps = static_cast<float>(config.rms_norm_eps)});
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
  result.vocab_size = config.vocab_size;
  result.logits.resize(static_cast<size_t>(rows) * config.vocab_size);
  std::vector<int32_t> all_rows(rows);
  std::iota(all_rows.begin(), all_rows.end(), 0);
  kernels::LogitsGatherCpu({.in = gathered.data(),
                            .rows = all_rows.data(),
                            .out = result.logits.data(),
                            .num_rows = rows,
                            .rows_per_rank = rows,
                            .vocab_local = d.vocab,
                            .world = world,
                            .vocab = config.vocab_size});
  result.first_row = step.first_row;
  return result;
}

}  // namespace rami::cpu
