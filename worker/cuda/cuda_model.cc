// A CUDA step: its host side (tables, plan, decisions, commit) is engine::CudaStepHost, which
// calls the device side here — table deltas and slot copies, the packed plan copied once, the
// step's buffers, the forward pass (cuda_model_forward.cc) launched or replayed as a graph, and
// the results copied back; see cuda_model.h. Creation and device memory are in cuda_model_setup.cc.
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

namespace rami::cuda {

using checkpoint::BF16ToF32;
using checkpoint::ModelConfig;
using checkpoint::ShardDims;
using collectives::Collectives;
using engine::CudaStepLayout;
using engine::CudaStepPlan;
using engine::DecodeBucket;
using engine::ForwardResult;
using engine::SampledToken;
using engine::SampleRequest;
using engine::SequenceChunk;
using kv::CachePolicyKind;
using kv::KvCache;
using kv::KvTablesDelta;
using kv::SeqId;

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

// The device side of a step: CudaStepHost (host-only) calls it in order, on the step's thread.
class CudaModel::Device final : public engine::StepDevice {
 public:
  Device(const CudaModel& model, Collectives& comm) : model_(model), comm_(comm) {}
  absl::Status ApplyTables(const KvTablesDelta& delta) override {
    return model_.tables_gpu_->Apply(delta);
  }
  absl::Status CopySlots(absl::Span<const kernels::KvCopyOp> ops,
                         absl::Span<const int32_t> bounds) override {
    return model_.CopySlots(ops, bounds);
  }
  absl::StatusOr<void*> PlanBuffer(int index, size_t bytes) override {
    return model_.PlanBuffer(index, bytes);
  }
  // DeepSeek steps run eagerly: each MoE layer brings its routing to the host (the experts'
  // GEMM sizes are launch parameters), which a CUDA graph cannot contain.
  int GraphBatch() const override {
    return model_.options_.cuda_graphs && !model_.config().mla.enabled
               ? model_.options_.max_graph_batch
               : 0;
  }
  // The forward pass runs to its end here (launches, sampling, copies back, a stream
  // synchronize): overlapped host work gains nothing on a GPU until the launch and the wait are
  // split (docs/gpu.md, "Host cost per step").
  absl::Status Launch(absl::Span<const SequenceChunk> chunks, const CudaStepPlan& plan,
                      const CudaStepLayout& layout, int buffer) override {
    ran_ = model_.Forward(chunks, plan, layout, model_.pinned_[buffer], &decisions_, comm_);
    return absl::OkStatus();
  }
  absl::StatusOr<ForwardResult> Wait(std::vector<uint8_t>* decisions) override {
    decisions->swap(decisions_);
    return std::move(ran_);
  }

 private:
  const CudaModel& model_;
  Collectives& comm_;
  absl::StatusOr<ForwardResult> ran_ = absl::FailedPreconditionError("no step launched");
  std::vector<uint8_t> decisions_;
};

absl::StatusOr<ForwardResult> CudaModel::RunReserved(absl::Span<const SequenceChunk> chunks,
                                                     KvCache& cache, Collectives& comm) const {
  absl::Status ready;
  // The Engine steps on its caller's thread, which need not be the one that loaded the model.
  if (host_ == nullptr) {
    ready = absl::FailedPreconditionError("CUDA backend: no cache made");
  } else if (const cudaError_t e = cudaSetDevice(device_); e != cudaSuccess) {
    ready = CudaStatus(e, "cudaSetDevice");
  } else if (comm.world_size() != options_.world_size) {
    ready = absl::FailedPreconditionError(
        absl::StrCat("CUDA backend: built for a world of ", options_.world_size,
                     ", stepped in a world of ", comm.world_size()));
  } else if (options_.world_size > 1 && device_comm_ == nullptr) {
    ready = absl::FailedPreconditionError("CUDA backend: world > 1 without NCCL collectives");
  }
  if (!ready.ok()) {
    for (const SequenceChunk& chunk : chunks) {
      cache.AbortAppend(chunk.seq_id);
      CacheChanged({&chunk.seq_id, 1});
    }
    return ready;
  }
  return Step(chunks, cache, comm);
}

absl::Status CudaModel::RunDecodeSteps(
    absl::Span<const SeqId> ids, std::vector<int32_t> tokens, int steps, bool overlap,
    KvCache& cache, Collectives& comm,
    const std::function<void(int, const ForwardResult&)>& on_step) const {
  if (host_ == nullptr) return absl::FailedPreconditionError("CUDA backend: no cache made");
  if (comm.world_size() != options_.world_size) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA backend: built for a world of ", options_.world_size,
                     ", stepped in a world of ", comm.world_size()));
  }
  RAMI_CUDA_OK(cudaSetDevice(device_));
  Device device(*this, comm);
  return host_->RunDecodeSteps(ids, std::move(tokens), steps, overlap, cache, device, on_step);
}

absl::StatusOr<ForwardResult> CudaModel::Step(absl::Span<const SequenceChunk> chunks,
                                              KvCache& cache, Collectives& comm) const {
  Device device(*this, comm);
  return host_->Run(chunks, cache, device);
}

absl::Status CudaModel::CopySlots(absl::Span<const kernels::KvCopyOp> ops,
                                  absl::Span<const int32_t> bounds) const {
  // A pageable async copy returns once staged, so the caller may clear its log.
  RAMI_ASSIGN_OR_RETURN(void* dev, Grow(scratch_[kOps], ops.size() * sizeof(kernels::KvCopyOp)));
  RAMI_CUDA_OK(cudaMemcpyAsync(dev, ops.data(), ops.size() * sizeof(kernels::KvCopyOp),
                               cudaMemcpyHostToDevice, stream_));
  for (size_t b = 0; b + 1 < bounds.size(); ++b) {
    RAMI_CUDA_OK(kernels::KvCopyCuda({.k_pool = k_pool_,
                                      .v_pool = v_pool_,
                                      .ops = static_cast<const kernels::KvCopyOp*>(dev) + bounds[b],
                                      .num_ops = bounds[b + 1] - bounds[b],
                                      .page_size = page_size_,
                                      .head_dim = cache_row_,
                                      .dtype = options_.dtype},
                                     stream_));
  }
  return absl::OkStatus();
}

absl::StatusOr<void*> CudaModel::PlanBuffer(int index, size_t bytes) const {
  // The step that last read this buffer has been waited for (CudaStepHost's promise), and every
  // step synchronizes the stream before it returns.
  void*& buffer = pinned_[index];
  size_t& size = pinned_bytes_[index];
  if (bytes > size) {
    if (buffer != nullptr) RAMI_CUDA_OK(cudaFreeHost(buffer));
    buffer = nullptr;
    const size_t capacity = std::max(bytes, 2 * size);
    size = 0;  // until the allocation succeeds (a failed one leaves no buffer)
    RAMI_CUDA_OK(cudaMallocHost(&buffer, capacity));
    size = capacity;
  }
  return buffer;
}

absl::StatusOr<ForwardResult> CudaModel::Forward(absl::Span<const SequenceChunk> chunks,
                                                 const CudaStepPlan& plan,
                                                 const CudaStepLayout& layout, const void* packed,
                                                 std::vector<uint8_t>* decisions,
                                                 Collectives& comm) const {
  const ModelConfig& c = config();
  const ShardDims& d = shape_.dims();
  const kernels::DeviceDType dtype = options_.dtype;
  const size_t es = kernels::DeviceDTypeSize(dtype);
  const int L = c.num_layers, D = c.head_dim, hidden = c.hidden_size;
  const int Hq = d.q_heads, Hkv = d.kv_heads, I = d.intermediate;
  const int world = options_.world_size;
  const bool graphs = options_.cuda_graphs && !c.mla.enabled;
  // CudaStepHost padded a decode-only plan to its bucket (GraphBatch): a bucket is its own.
  const int bucket =
      graphs && plan.num_decode == plan.num_tokens &&
              DecodeBucket(plan.num_tokens, options_.max_graph_batch) == plan.num_tokens
          ? plan.num_tokens
          : 0;
  // The plan is packed in `packed` (pinned: PlanBuffer): one copy.
  const int T = plan.num_tokens;
  const int rows = static_cast<int>(plan.logit_tokens.size());
  RAMI_ASSIGN_OR_RETURN(void* step_dev, Grow(scratch_[kStep], layout.bytes));
  RAMI_CUDA_OK(cudaMemcpyAsync(step_dev, packed, layout.bytes, cudaMemcpyHostToDevice, stream_));
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
  a.write_decisions = host_->policy().kind == CachePolicyKind::kDms;
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
            .window = host_->policy().window,
            .dtype = dtype};
  tables_gpu_->FillView(&a.view);
  if (!host_->policy().evicts()) a.view.flags = nullptr;

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
  decisions->resize(a.write_decisions ? L * per_layer : 0);
  if (a.write_decisions) {  // pageable: complete when the stream is synchronized below
    RAMI_CUDA_OK(cudaMemcpyAsync(decisions->data(), a.alpha_all, decisions->size(),
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
  return result;
}

}  // namespace rami::cuda
