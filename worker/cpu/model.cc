// Model loading and the step: validate, reserve pages, plan, embed, run the layers, logits.
#include "worker/cpu/model.h"
#include "worker/checkpoint/config_parser.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/log_softmax_topn.h"
#include "kernels/logits_gather.h"
#include "kernels/rmsnorm.h"
#include "worker/checkpoint/checkpoint.h"
#include "worker/cpu/decoder_layer.h"
#include "worker/cpu/mla_layer.h"
#include "worker/cpu/step_metadata.h"
#include "worker/engine/token_scores.h"

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

  // Final norm; LM head only for the rows that return logits, then for the scored rows.
  kernels::RmsNormCpu({.x = ws.delta.data(),
                       .residual = ws.residual.data(),
                       .weight = weights_.final_norm.data(),
                       .out = ws.normed.data(),
                       .rows = t,
                       .cols = hidden,
                       .eps = static_cast<float>(config.rms_norm_eps)});
  ForwardResult result;
  result.vocab_size = config.vocab_size;
  RAMI_ASSIGN_OR_RETURN(result.logits, LogitsOf(ws.normed, step.logit_tokens, comm));
  result.first_row = step.first_row;
  RAMI_RETURN_IF_ERROR(Score(chunks, ws.normed, comm, &result));
  return result;
}

absl::StatusOr<std::vector<float>> Model::LogitsOf(const std::vector<float>& normed,
                                                   absl::Span<const int32_t> tokens,
                                                   Collectives& comm) const {
  const ShardDims& d = shape_.dims();
  const int hidden = shape_.config().hidden_size;
  const int vocab = shape_.config().vocab_size;
  const int rows = static_cast<int>(tokens.size());
  std::vector<float> selected(static_cast<size_t>(rows) * hidden);
  for (int r = 0; r < rows; ++r) {
    std::copy_n(normed.begin() + static_cast<int64_t>(tokens[r]) * hidden, hidden,
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
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  std::vector<int32_t> all_rows(rows);
  std::iota(all_rows.begin(), all_rows.end(), 0);
  kernels::LogitsGatherCpu({.in = gathered.data(),
                            .rows = all_rows.data(),
                            .out = logits.data(),
                            .num_rows = rows,
                            .rows_per_rank = rows,
                            .vocab_local = d.vocab,
                            .world = world,
                            .vocab = vocab});
  return logits;
}

absl::Status Model::Score(absl::Span<const SequenceChunk> chunks, const std::vector<float>& normed,
                          Collectives& comm, ForwardResult* result) const {
  // The CPU step's tokens are the chunks concatenated in the caller's order.
  std::vector<int32_t> chunk_first(chunks.size());
  int32_t first = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    chunk_first[c] = first;
    first += static_cast<int32_t>(chunks[c].tokens.size());
  }
  const engine::ScorePlan plan = engine::PlanScores(chunks, chunk_first);
  const int vocab = shape_.config().vocab_size;
  std::vector<float> target_lp(engine::kScoreSliceRows);
  std::vector<int32_t> top_ids(static_cast<size_t>(engine::kScoreSliceRows) * plan.top_n);
  std::vector<float> top_lp(top_ids.size());
  for (int begin = 0; begin < plan.rows(); begin += engine::kScoreSliceRows) {
    const int n = std::min(engine::kScoreSliceRows, plan.rows() - begin);
    RAMI_ASSIGN_OR_RETURN(
        const std::vector<float> logits,
        LogitsOf(normed, absl::MakeConstSpan(plan.tokens).subspan(begin, n), comm));
    kernels::LogSoftmaxTopNCpu({.logits = logits.data(),
                                .top_ids = top_ids.data(),
                                .top_logprobs = top_lp.data(),
                                .rows = n,
                                .cols = vocab,
                                .top_n = plan.top_n,
                                .targets = plan.targets.data() + begin,
                                .target_logprobs = target_lp.data()});
    engine::AppendScores(plan, chunks, begin, n, target_lp.data(), top_ids.data(), top_lp.data(),
                         result);
  }
  return absl::OkStatus();
}

}  // namespace rami::cpu
