// Prompt scoring on the device (SequenceChunk::score_top_n, worker/engine/token_scores.h): after
// the forward pass, the scored rows of the final norm's output go through the LM head
// kScoreSliceRows at a time — rows gathered, GEMM, the ranks' slices all-gathered, fp32
// full-vocabulary rows (LogitsGatherCuda), log-softmax + top-n with the target's log-prob
// (LogSoftmaxTopNCuda) — and only [rows, 1 + 2n] values come back to the host. The slice buffers
// have a fixed size (ScoreBuffers), reserved before the KV pool is planned.
#include <algorithm>
#include <numeric>
#include <vector>

#include "base/status_macros.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/sampling.h"
#include "worker/cuda/cuda_model.h"
#include "worker/cuda/cuda_status.h"
#include "worker/engine/token_scores.h"

namespace rami::cuda {

using checkpoint::ModelConfig;
using engine::ForwardResult;
using engine::kScoreSliceRows;
using engine::ScorePlan;
using engine::SequenceChunk;

namespace {

// The device I/O of one slice, S = kScoreSliceRows, M = kMaxLogprobs, in one buffer: the
// inputs (int32) first, then the outputs, so each direction is one copy.
struct ScoreIo {
  static constexpr size_t kS = kScoreSliceRows, kM = kernels::kMaxLogprobs;
  static constexpr size_t kRows = 0;                       // [S] 0 … n − 1 (LogitsGather)
  static constexpr size_t kTokens = kRows + kS * 4;        // [S] the rows' step tokens
  static constexpr size_t kTargets = kTokens + kS * 4;     // [S] the tokens they score
  static constexpr size_t kOutputs = kTargets + kS * 4;    //
  static constexpr size_t kTargetLp = kOutputs;            // [S] fp32
  static constexpr size_t kTopIds = kTargetLp + kS * 4;    // [S, top_n] int32
  static constexpr size_t kTopLp = kTopIds + kS * kM * 4;  // [S, top_n] fp32
  static constexpr size_t kBytes = kTopLp + kS * kM * 4;
};

}  // namespace

absl::StatusOr<CudaModel::ScoreBuffers> CudaModel::GrowScoreBuffers() const {
  const size_t es = kernels::DeviceDTypeSize(options_.dtype);
  const size_t s = kScoreSliceRows;
  const size_t local = static_cast<size_t>(shape_.dims().vocab);
  ScoreBuffers b;
  RAMI_ASSIGN_OR_RETURN(b.selected, Grow(scratch_[kScoreSelected], s * config().hidden_size * es));
  RAMI_ASSIGN_OR_RETURN(b.logits, Grow(scratch_[kScoreLogits], s * local * es));
  if (options_.world_size > 1) {
    RAMI_ASSIGN_OR_RETURN(b.gathered,
                          Grow(scratch_[kScoreGathered], options_.world_size * s * local * es));
  }
  RAMI_ASSIGN_OR_RETURN(void* f32, Grow(scratch_[kScoreF32], s * config().vocab_size * 4));
  b.f32 = static_cast<float*>(f32);
  RAMI_ASSIGN_OR_RETURN(void* io, Grow(scratch_[kScoreIo], ScoreIo::kBytes));
  b.io = static_cast<char*>(io);
  return b;
}

absl::Status CudaModel::Score(absl::Span<const SequenceChunk> chunks,
                              const engine::CudaStepPlan& plan, const StepArgs& a,
                              ForwardResult* result) const {
  const ScorePlan score = engine::PlanScores(chunks, plan.chunk_first);
  if (score.rows() == 0) return absl::OkStatus();
  RAMI_ASSIGN_OR_RETURN(const ScoreBuffers b, GrowScoreBuffers());
  const ModelConfig& c = config();
  const int vocab_local = shape_.dims().vocab;
  const int world = options_.world_size;
  const int top_n = score.top_n;
  std::vector<int32_t> in(3 * kScoreSliceRows);  // host side of the inputs: rows, tokens, targets
  std::iota(in.begin(), in.begin() + kScoreSliceRows, 0);
  std::vector<float> target_lp(kScoreSliceRows), top_lp(kScoreSliceRows * top_n);
  std::vector<int32_t> top_ids(top_lp.size());
  const auto* rows = reinterpret_cast<const int32_t*>(b.io + ScoreIo::kRows);
  const auto* tokens = reinterpret_cast<const int32_t*>(b.io + ScoreIo::kTokens);
  const auto* targets = reinterpret_cast<const int32_t*>(b.io + ScoreIo::kTargets);
  auto* d_target_lp = reinterpret_cast<float*>(b.io + ScoreIo::kTargetLp);
  auto* d_top_ids = reinterpret_cast<int32_t*>(b.io + ScoreIo::kTopIds);
  auto* d_top_lp = reinterpret_cast<float*>(b.io + ScoreIo::kTopLp);
  for (int begin = 0; begin < score.rows(); begin += kScoreSliceRows) {
    const int n = std::min(kScoreSliceRows, score.rows() - begin);
    std::copy_n(score.tokens.begin() + begin, n, in.begin() + kScoreSliceRows);
    std::copy_n(score.targets.begin() + begin, n, in.begin() + 2 * kScoreSliceRows);
    // Pageable source: the call returns once `in` is staged, so the next slice may refill it.
    RAMI_CUDA_OK(
        cudaMemcpyAsync(b.io, in.data(), ScoreIo::kOutputs, cudaMemcpyHostToDevice, stream_));
    // The slice's rows of the final norm's output [T, hidden] (a lookup over step rows), the
    // LM head over this rank's vocabulary slice, every rank's slice gathered.
    RAMI_CUDA_OK(kernels::EmbeddingCuda({.tokens = tokens,
                                         .table = a.normed,
                                         .out = b.selected,
                                         .num_tokens = n,
                                         .hidden = c.hidden_size,
                                         .vocab_start = 0,
                                         .vocab_local = a.num_tokens,
                                         .dtype = options_.dtype},
                                        stream_));
    RAMI_RETURN_IF_ERROR(
        Gemm(b.selected, weights_->lm_head(), b.logits, n, vocab_local, c.hidden_size));
    if (world > 1) {
      RAMI_RETURN_IF_ERROR(device_comm_->AllGatherDevice(
          b.logits, static_cast<size_t>(n) * vocab_local, b.gathered, options_.dtype));
    }
    RAMI_CUDA_OK(kernels::LogitsGatherCuda({.in = world > 1 ? b.gathered : b.logits,
                                            .rows = rows,
                                            .out = b.f32,
                                            .num_rows = n,
                                            .rows_per_rank = n,
                                            .vocab_local = vocab_local,
                                            .world = world,
                                            .vocab = c.vocab_size,
                                            .dtype = options_.dtype},
                                           stream_));
    RAMI_CUDA_OK(kernels::LogSoftmaxTopNCuda({.logits = b.f32,
                                              .top_ids = d_top_ids,
                                              .top_logprobs = d_top_lp,
                                              .rows = n,
                                              .cols = c.vocab_size,
                                              .top_n = top_n,
                                              .targets = targets,
                                              .target_logprobs = d_target_lp},
                                             stream_));
    RAMI_CUDA_OK(cudaMemcpyAsync(target_lp.data(), d_target_lp, n * sizeof(float),
                                 cudaMemcpyDeviceToHost, stream_));
    if (top_n > 0) {
      RAMI_CUDA_OK(cudaMemcpyAsync(top_ids.data(), d_top_ids, n * top_n * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, stream_));
      RAMI_CUDA_OK(cudaMemcpyAsync(top_lp.data(), d_top_lp, n * top_n * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream_));
    }
    RAMI_CUDA_OK(cudaStreamSynchronize(stream_));
    engine::AppendScores(score, chunks, begin, n, target_lp.data(), top_ids.data(), top_lp.data(),
                         result);
  }
  return absl::OkStatus();
}

}  // namespace rami::cuda
