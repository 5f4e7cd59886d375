// A CUDA step on the host: table deltas and slot copies, the plan (padded to a graph bucket
// for decode steps) packed and copied once, the step's buffers, then the forward pass
// (cuda_model_forward.cc) launched or replayed as a graph, and the results copied back; see
// cuda_model.h. Creation and device memory are in cuda_model_setup.cc.
#include "worker/cuda/cuda_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/kv_update.h"
#include "kernels/logits_gather.h"
#include "worker/checkpoint/dtype.h"
#include "worker/cuda/cuda_status.h"
#include "worker/cuda/device_sampler.h"
#include "worker/engine/cuda_step_plan.h"
#include "worker/kv/kv_copy_batches.h"

namespace rami::cuda {

using checkpoint::BF16ToF32;
using checkpoint::ModelConfig;
using checkpoint::ShardDims;
using collectives::Collectives;
using engine::CudaStepLayout;
using engine::CudaStepPlan;
using engine::DecodeBucket;
using engine::ForwardResult;
using engine::LayoutOf;
using engine::PackCudaStep;
using engine::PadDecodePlan;
using engine::PlanCudaStep;
using engine::SampledToken;
using engine::SampleRequest;
using engine::SequenceChunk;
using kv::CachePolicyKind;
using kv::KvCache;
using kv::KvCopyBatches;
using kv::KvTablesDelta;
using kv::SeqId;
using kv::StepStreams;

namespace {

// [rows, vocab] fp32 logits on the host from the device's [world][rows][vocab_local] rows of
// the compute dtype (the padding columns of the last ranks dropped: LogitsGatherCpu).
void LogitsToHost(const std::vector<uint8_t>& raw, kernels::DeviceDType dtype, int world, int rows,
                  int vocab_local, int vocab, std::vector<float>* out) {
  std::vector<float> all(static_cast<size_t>(world) * rows * vocab_local);
  if (dtype == kernels::DeviceDType::kF32) {
    std::memcpy(all.data(), raw.data(), all.size() * 4);
  } else {
    for (size_t i = 0; i < all.size(); ++i) {
      uint16_t b;
      std::memcpy(&b, raw.data() + 2 * i, 2);
      all[i] = BF16ToF32(b);
    }
  }
  std::vector<int32_t> ids(rows);
  std::iota(ids.begin(), ids.end(), 0);
  out->resize(static_cast<size_t>(rows) * vocab);
  kernels::LogitsGatherCpu({.in = all.data(),
                            .rows = ids.data(),
                            .out = out->data(),
                            .num_rows = rows,
                            .rows_per_rank = rows,
                            .vocab_local = vocab_local,
                            .world = world,
                            .vocab = vocab});
}

}  // namespace

std::vector<const void*> CudaModel::StepArgs::Pointers() const {
  return {tokens,
          positions,
          token_stream,
          logit_tokens,
          tiles,
          partial_out,
          partial_lse,
          view.k_pool,
          view.v_pool,
          view.page_table,
          view.kept_page_start,
          view.kept_count,
          view.window_page_start,
          view.window_base,
          view.window_start,
          view.flags,
          view.flag_start,
          residual,
          dx,
          normed,
          qkv,
          q,
          k,
          v,
          attn,
          gate_up,
          act,
          selected,
          logits,
          gathered,
          alpha_all,
          alpha_x,
          shared};
}

absl::StatusOr<ForwardResult> CudaModel::RunReserved(absl::Span<const SequenceChunk> chunks,
                                                     KvCache& cache, Collectives& comm) const {
  absl::StatusOr<ForwardResult> result;
  // The Engine steps on its caller's thread, which need not be the one that loaded the model.
  if (const cudaError_t e = cudaSetDevice(device_); e != cudaSuccess) {
    result = CudaStatus(e, "cudaSetDevice");
  } else if (comm.world_size() != options_.world_size) {
    result = absl::FailedPreconditionError(
        absl::StrCat("CUDA backend: built for a world of ", options_.world_size,
                     ", stepped in a world of ", comm.world_size()));
  } else if (options_.world_size > 1 && device_comm_ == nullptr) {
    result = absl::FailedPreconditionError("CUDA backend: world > 1 without NCCL collectives");
  } else {
    result = Run(chunks, cache, comm);
  }
  for (const SequenceChunk& chunk : chunks) {
    if (result.ok()) {
      cache.CommitAppend(chunk.seq_id, static_cast<int64_t>(chunk.tokens.size()));
    } else {
      cache.AbortAppend(chunk.seq_id);
    }
    touched_.insert(chunk.seq_id);  // committed or trimmed: resync before the next step
  }
  return result;
}

absl::Status CudaModel::SyncTablesAndCopies(absl::Span<const SequenceChunk> chunks,
                                            KvCache& cache) const {
  // Page tables: the sequences changed since the last step, as deltas.
  for (const SequenceChunk& chunk : chunks) touched_.insert(chunk.seq_id);
  KvTablesDelta delta;
  // Refused (ResourceExhausted) before anything changes when the tables would outgrow their
  // int32 offsets: the step fails, touched_ stays for the next Sync.
  RAMI_RETURN_IF_ERROR(
      tables_->Sync(cache, std::vector<SeqId>(touched_.begin(), touched_.end()), &delta));
  touched_.clear();
  RAMI_RETURN_IF_ERROR(tables_gpu_->Apply(delta));
  // The host bookkeeping's slot copies (last commit's promotions, forks), in independent
  // launches. A pageable async copy returns once staged, so the log may be cleared.
  if (!copy_log_.empty()) {
    RAMI_ASSIGN_OR_RETURN(void* ops,
                          Grow(scratch_[kOps], copy_log_.size() * sizeof(kernels::KvCopyOp)));
    RAMI_CUDA_OK(cudaMemcpyAsync(ops, copy_log_.data(),
                                 copy_log_.size() * sizeof(kernels::KvCopyOp),
                                 cudaMemcpyHostToDevice, stream_));
    const std::vector<int32_t> bounds = KvCopyBatches(copy_log_, page_size_);
    for (size_t b = 0; b + 1 < bounds.size(); ++b) {
      RAMI_CUDA_OK(
          kernels::KvCopyCuda({.k_pool = k_pool_,
                               .v_pool = v_pool_,
                               .ops = static_cast<const kernels::KvCopyOp*>(ops) + bounds[b],
                               .num_ops = bounds[b + 1] - bounds[b],
                               .page_size = page_size_,
                               .head_dim = cache_row_,
                               .dtype = options_.dtype},
                              stream_));
    }
    copy_log_.clear();
  }
  for (const SequenceChunk& chunk : chunks) {
    tables_->ExpectDeviceFlags(chunk.seq_id, static_cast<int64_t>(chunk.tokens.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ForwardResult> CudaModel::Run(absl::Span<const SequenceChunk> chunks, KvCache& cache,
                                             Collectives& comm) const {
  if (tables_ == nullptr) return absl::FailedPreconditionError("CUDA backend: no cache made");
  const ModelConfig& c = config();
  const ShardDims& d = shape_.dims();
  const kernels::DeviceDType dtype = options_.dtype;
  const size_t es = kernels::DeviceDTypeSize(dtype);
  const int L = c.num_layers, D = c.head_dim, hidden = c.hidden_size;
  const int Hq = d.q_heads, Hkv = d.kv_heads, I = d.intermediate;
  const int world = options_.world_size;
  RAMI_RETURN_IF_ERROR(SyncTablesAndCopies(chunks, cache));

  // The step's metadata: planned once (a decode step padded to its graph bucket), packed, one
  // copy.
  CudaStepPlan plan = PlanCudaStep(chunks, cache, *tables_);
  // DeepSeek steps run eagerly: each MoE layer brings its routing to the host (the experts'
  // GEMM sizes are launch parameters), which a CUDA graph cannot contain.
  const bool graphs = options_.cuda_graphs && !c.mla.enabled;
  const int bucket = graphs && plan.num_decode == plan.num_tokens
                         ? DecodeBucket(plan.num_tokens, options_.max_graph_batch)
                         : 0;
  if (bucket > 0) PadDecodePlan(bucket, &plan);
  const int T = plan.num_tokens;
  const int rows = static_cast<int>(plan.logit_tokens.size());
  const CudaStepLayout layout = LayoutOf(plan);
  RAMI_CUDA_OK(cudaStreamSynchronize(stream_));  // the previous step's copy read `pinned_`
  if (layout.bytes > pinned_bytes_) {
    if (pinned_ != nullptr) RAMI_CUDA_OK(cudaFreeHost(pinned_));
    pinned_ = nullptr;
    const size_t capacity = std::max(layout.bytes, 2 * pinned_bytes_);
    pinned_bytes_ = 0;  // until the allocation succeeds (a failed one leaves no buffer)
    RAMI_CUDA_OK(cudaMallocHost(&pinned_, capacity));
    pinned_bytes_ = capacity;
  }
  PackCudaStep(plan, layout, pinned_);
  RAMI_ASSIGN_OR_RETURN(void* step_dev, Grow(scratch_[kStep], layout.bytes));
  RAMI_CUDA_OK(cudaMemcpyAsync(step_dev, pinned_, layout.bytes, cudaMemcpyHostToDevice, stream_));
  const char* sd = static_cast<const char*>(step_dev);
  StepArgs a;
  a.num_tokens = T;
  a.num_decode = plan.num_decode;
  a.rows = rows;
  a.tokens = reinterpret_cast<const int32_t*>(sd + layout.tokens);
  a.positions = reinterpret_cast<const int32_t*>(sd + layout.positions);
  a.token_stream = reinterpret_cast<const int32_t*>(sd + layout.token_stream);
  a.logit_tokens = reinterpret_cast<const int32_t*>(sd + layout.logit_tokens);
  // MLA attends every token through its decode kernel: no prefill tiles (whose group, H / 1,
  // can exceed a tile's rows).
  const std::vector<kernels::PrefillTile> tiles =
      c.mla.enabled ? std::vector<kernels::PrefillTile>{}
                    : kernels::PlanPrefillTiles(plan.prefill_first, plan.prefill_length, Hq / Hkv);
  RAMI_ASSIGN_OR_RETURN(void* tiles_dev,
                        Grow(scratch_[kTiles], tiles.size() * sizeof(kernels::PrefillTile)));
  if (!tiles.empty()) {
    RAMI_CUDA_OK(cudaMemcpyAsync(tiles_dev, tiles.data(),
                                 tiles.size() * sizeof(kernels::PrefillTile),
                                 cudaMemcpyHostToDevice, stream_));
  }
  a.tiles = static_cast<const kernels::PrefillTile*>(tiles_dev);
  a.num_tiles = static_cast<int>(tiles.size());
  // Balanced splits (keys_per_split 0): each query splits its own keys, so a graph keyed by
  // the number of splits stays right as the contexts grow.
  a.splits = kernels::PlanDecodeSplits(std::max<int64_t>(plan.max_decode_keys, 1),
                                       std::max(plan.num_decode, 1), Hkv, num_sms_);
  a.splits.keys_per_split = 0;
  const size_t partial =
      static_cast<size_t>(std::max(plan.num_decode, 1)) * Hq * a.splits.num_splits;
  RAMI_ASSIGN_OR_RETURN(void* partial_out, Grow(scratch_[kPartialOut], partial * D * 4));
  RAMI_ASSIGN_OR_RETURN(void* partial_lse, Grow(scratch_[kPartialLse], partial * 4));
  a.partial_out = static_cast<float*>(partial_out);
  a.partial_lse = static_cast<float*>(partial_lse);

  // Activations.
  const size_t t = static_cast<size_t>(T);
  RAMI_ASSIGN_OR_RETURN(a.residual, Grow(scratch_[kResidual], t * hidden * es));
  RAMI_ASSIGN_OR_RETURN(a.dx, Grow(scratch_[kDelta], t * hidden * es));
  RAMI_ASSIGN_OR_RETURN(a.normed, Grow(scratch_[kNormed], t * hidden * es));
  if (!c.mla.enabled) {  // MLA's attention buffers: PrepareMlaStep
    RAMI_ASSIGN_OR_RETURN(a.qkv, Grow(scratch_[kQkv], t * (Hq + 2 * Hkv) * D * es));
    RAMI_ASSIGN_OR_RETURN(a.q, Grow(scratch_[kQ], t * Hq * D * es));
    RAMI_ASSIGN_OR_RETURN(a.k, Grow(scratch_[kK], t * Hkv * D * es));
    RAMI_ASSIGN_OR_RETURN(a.v, Grow(scratch_[kV], t * Hkv * D * es));
    RAMI_ASSIGN_OR_RETURN(a.attn, Grow(scratch_[kAttn], t * Hq * D * es));
  }
  RAMI_ASSIGN_OR_RETURN(a.gate_up, Grow(scratch_[kGateUp], t * 2 * I * es));
  RAMI_ASSIGN_OR_RETURN(a.act, Grow(scratch_[kAct], t * I * es));
  RAMI_ASSIGN_OR_RETURN(void* alpha_all, Grow(scratch_[kAlpha], static_cast<size_t>(L) * t * Hkv));
  a.alpha_all = static_cast<uint8_t*>(alpha_all);
  RAMI_ASSIGN_OR_RETURN(a.selected,
                        Grow(scratch_[kSelected], static_cast<size_t>(rows) * hidden * es));
  const size_t logits_bytes = static_cast<size_t>(rows) * d.vocab * es;
  RAMI_ASSIGN_OR_RETURN(a.logits, Grow(scratch_[kLogits], logits_bytes));
  if (world > 1) {
    RAMI_ASSIGN_OR_RETURN(a.gathered, Grow(scratch_[kGathered], world * logits_bytes));
  }
  a.write_decisions = cache.policy().kind == CachePolicyKind::kDms;
  if (c.dms.enabled && c.dms.separate_alpha) {
    RAMI_ASSIGN_OR_RETURN(a.alpha_x, Grow(scratch_[kAlphaX], t * hidden * es));
  }
  if (c.dms.enabled && c.dms.alpha_per_layer) {
    RAMI_ASSIGN_OR_RETURN(void* shared, Grow(scratch_[kShared], t * 4));
    a.shared = static_cast<float*>(shared);
  }

  if (c.mla.enabled) RAMI_RETURN_IF_ERROR(PrepareMlaStep(plan, &a));

  a.view = {.k_pool = k_pool_,
            .v_pool = v_pool_,
            .page_size = page_size_,
            .head_dim = cache_row_,
            .window = cache.policy().window,
            .dtype = dtype};
  tables_gpu_->FillView(&a.view);
  if (!cache.policy().evicts()) a.view.flags = nullptr;

  if (bucket > 0) {
    // Every rank learns whether any rank's capture of this step failed (decode-only steps
    // are the same steps on every rank): then every rank runs the step eagerly.
    auto agree = [&](bool failed) -> absl::StatusOr<bool> {
      if (comm.world_size() == 1) return failed;
      float any = failed ? 1.0f : 0.0f;
      RAMI_RETURN_IF_ERROR(comm.AllReduceSum(&any, 1));
      return any > 0.0f;
    };
    RAMI_RETURN_IF_ERROR(graphs_.Run(
        {bucket, a.splits.num_splits}, a.Pointers(), stream_, [&] { return Enqueue(a); }, agree));
  } else {
    RAMI_RETURN_IF_ERROR(Enqueue(a));
  }

  // Results: the tokens of the chunks with a sample request, sampled on the device; the other
  // chunks' logits rows (every rank's slice) and the step's decisions, copied back.
  const void* all_logits = world > 1 ? a.gathered : a.logits;
  ForwardResult result;
  result.vocab_size = c.vocab_size;
  result.first_row.assign(chunks.size(), -1);
  std::vector<SampleRequest> requests;
  std::vector<size_t> sampled_chunk;                   // [requests] the request's chunk
  std::vector<std::pair<int32_t, int32_t>> host_runs;  // (first step row, rows) to copy back
  int32_t host_rows = 0;
  for (size_t ci = 0; ci < chunks.size(); ++ci) {
    const SequenceChunk& chunk = chunks[ci];
    if (options_.device_sampling && chunk.sample.has_value() && !chunk.all_logits) {
      requests.push_back(*chunk.sample);
      requests.back().row = plan.first_row[ci];
      sampled_chunk.push_back(ci);
      continue;
    }
    const int32_t n = chunk.all_logits ? static_cast<int32_t>(chunk.tokens.size()) : 1;
    result.first_row[ci] = host_rows;
    host_runs.emplace_back(plan.first_row[ci], n);
    host_rows += n;
  }
  const size_t row_bytes = static_cast<size_t>(d.vocab) * es;
  std::vector<uint8_t> raw(static_cast<size_t>(world) * host_rows * row_bytes);
  for (int r = 0; r < world; ++r) {  // raw: [world][host_rows][vocab_local]
    size_t at = static_cast<size_t>(r) * host_rows;
    for (const auto& [first, n] : host_runs) {
      RAMI_CUDA_OK(cudaMemcpyAsync(raw.data() + at * row_bytes,
                                   static_cast<const uint8_t*>(all_logits) +
                                       (static_cast<size_t>(r) * rows + first) * row_bytes,
                                   n * row_bytes, cudaMemcpyDeviceToHost, stream_));
      at += n;
    }
  }
  const size_t per_layer = t * Hkv;
  std::vector<uint8_t> decisions(a.write_decisions ? L * per_layer : 0);
  if (a.write_decisions) {
    RAMI_CUDA_OK(cudaMemcpyAsync(decisions.data(), a.alpha_all, decisions.size(),
                                 cudaMemcpyDeviceToHost, stream_));
  }
  if (!requests.empty()) {  // waits for the stream, the copies above included
    RAMI_ASSIGN_OR_RETURN(
        std::vector<SampledToken> tokens,
        sampler_->Sample(all_logits, dtype, world, rows, d.vocab, c.vocab_size, requests));
    result.sampled.resize(chunks.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      result.sampled[sampled_chunk[i]] = std::move(tokens[i]);
    }
  }
  RAMI_RETURN_IF_ERROR(Score(chunks, plan, a, &result));
  RAMI_CUDA_OK(cudaStreamSynchronize(stream_));
  if (device_comm_ != nullptr) RAMI_RETURN_IF_ERROR(device_comm_->Synchronize());
  LogitsToHost(raw, dtype, world, host_rows, d.vocab, c.vocab_size, &result.logits);
  // The device's decisions become the host's flags (token t's α flags position t − 1), so
  // that CommitAppend promotes and evicts as the device's attention saw it.
  if (a.write_decisions) {
    std::vector<SeqId> batch;
    for (const SequenceChunk& chunk : chunks) batch.push_back(chunk.seq_id);
    const StepStreams host = cache.BuildStepStreams(batch);
    for (size_t b = 0; b < chunks.size(); ++b) {
      const int64_t start = cache.Length(chunks[b].seq_id);
      for (size_t i = 0; i < chunks[b].tokens.size(); ++i) {
        const int64_t p = start + static_cast<int64_t>(i);
        if (p == 0) continue;  // token 0's α is discarded
        const size_t token = static_cast<size_t>(plan.chunk_first[b]) + i;
        for (int layer = 0; layer < L; ++layer) {
          for (int h = 0; h < Hkv; ++h) {
            const size_t s = (b * L + layer) * Hkv + h;
            host.window_flags[s][p - 1 - host.window_base[s]] =
                decisions[(static_cast<size_t>(layer) * t + token) * Hkv + h];
          }
        }
      }
    }
  }
  return result;
}

}  // namespace rami::cuda
