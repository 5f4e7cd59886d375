// The CUDA forward pass: host bookkeeping (tables, copies, plan) once per step, then the
// decoder layers as kernel launches on one stream; see cuda_model.h. Creation and device
// memory are in cuda_model_setup.cc.
#include "worker/cuda/cuda_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/kv_update.h"
#include "kernels/cuda/qkv_prep.h"
#include "worker/cuda/bias_add.h"
#include "worker/cuda/cuda_status.h"
#include "worker/cuda/cuda_step_plan.h"
#include "worker/cuda/kv_copy_batches.h"
#include "worker/dtype.h"

namespace rami::cuda {
absl::StatusOr<ForwardResult> CudaModel::RunReserved(absl::Span<const SequenceChunk> chunks,
                                                     KvCache& cache, Collectives& comm) const {
  absl::StatusOr<ForwardResult> result =
      comm.world_size() == 1 ? Run(chunks, cache)
                             : absl::UnimplementedError("CUDA backend: world size > 1");
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

absl::StatusOr<ForwardResult> CudaModel::Run(absl::Span<const SequenceChunk> chunks,
                                             KvCache& cache) const {
  if (tables_ == nullptr) return absl::FailedPreconditionError("CUDA backend: no cache made");
  const ModelConfig& c = config();
  const ShardDims& d = cpu_->dims();
  const kernels::DeviceDType dtype = options_.dtype;
  const size_t es = kernels::DeviceDTypeSize(dtype);
  const int L = c.num_layers, D = c.head_dim, hidden = c.hidden_size;
  const int Hq = d.q_heads, Hkv = d.kv_heads, I = d.intermediate;
  const int group = Hq / Hkv;
  const bool borrowed = c.dms.enabled;  // the decision is read from q (no adapter: Create)
  const bool write_decisions = cache.policy().kind == CachePolicyKind::kDms;

  // 1. Page tables: the sequences changed since the last step, as deltas.
  for (const SequenceChunk& chunk : chunks) touched_.insert(chunk.seq_id);
  KvTablesDelta delta;
  tables_->Sync(cache, std::vector<SeqId>(touched_.begin(), touched_.end()), &delta);
  touched_.clear();
  RAMI_RETURN_IF_ERROR(tables_gpu_->Apply(delta));
  // 2. The host bookkeeping's slot copies (last commit's promotions, forks), in independent
  //    launches. A pageable async copy returns once staged, so the log may be cleared.
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
                               .head_dim = D,
                               .dtype = dtype},
                              stream_));
    }
    copy_log_.clear();
  }
  for (const SequenceChunk& chunk : chunks) {
    tables_->ExpectDeviceFlags(chunk.seq_id, static_cast<int64_t>(chunk.tokens.size()));
  }

  // 3. The step's metadata: planned once, packed, one copy.
  const CudaStepPlan plan = PlanCudaStep(chunks, cache, *tables_);
  const int T = plan.num_tokens;
  const int rows = static_cast<int>(plan.logit_tokens.size());
  const CudaStepLayout layout = LayoutOf(plan);
  RAMI_CUDA_OK(cudaStreamSynchronize(stream_));  // the previous step's copy read `pinned_`
  if (layout.bytes > pinned_bytes_) {
    if (pinned_ != nullptr) RAMI_CUDA_OK(cudaFreeHost(pinned_));
    pinned_ = nullptr;
    pinned_bytes_ = std::max(layout.bytes, 2 * pinned_bytes_);
    RAMI_CUDA_OK(cudaMallocHost(&pinned_, pinned_bytes_));
  }
  PackCudaStep(plan, layout, pinned_);
  RAMI_ASSIGN_OR_RETURN(void* step_dev, Grow(scratch_[kStep], layout.bytes));
  RAMI_CUDA_OK(cudaMemcpyAsync(step_dev, pinned_, layout.bytes, cudaMemcpyHostToDevice, stream_));
  const char* sd = static_cast<const char*>(step_dev);
  const int32_t* tokens = reinterpret_cast<const int32_t*>(sd + layout.tokens);
  const int32_t* positions = reinterpret_cast<const int32_t*>(sd + layout.positions);
  const int32_t* token_stream = reinterpret_cast<const int32_t*>(sd + layout.token_stream);
  const int32_t* logit_tokens = reinterpret_cast<const int32_t*>(sd + layout.logit_tokens);
  const std::vector<kernels::PrefillTile> tiles =
      kernels::PlanPrefillTiles(plan.prefill_first, plan.prefill_length, group);
  RAMI_ASSIGN_OR_RETURN(void* tiles_dev,
                        Grow(scratch_[kTiles], tiles.size() * sizeof(kernels::PrefillTile)));
  if (!tiles.empty()) {
    RAMI_CUDA_OK(cudaMemcpyAsync(tiles_dev, tiles.data(),
                                 tiles.size() * sizeof(kernels::PrefillTile),
                                 cudaMemcpyHostToDevice, stream_));
  }
  const kernels::DecodeSplitPlan splits = kernels::PlanDecodeSplits(
      std::max<int64_t>(plan.max_decode_keys, 1), std::max(plan.num_decode, 1), Hkv, num_sms_);
  const size_t partial = static_cast<size_t>(std::max(plan.num_decode, 1)) * Hq * splits.num_splits;
  RAMI_ASSIGN_OR_RETURN(void* partial_out, Grow(scratch_[kPartialOut], partial * D * 4));
  RAMI_ASSIGN_OR_RETURN(void* partial_lse, Grow(scratch_[kPartialLse], partial * 4));

  // 4. Activations.
  const size_t t = static_cast<size_t>(T);
  RAMI_ASSIGN_OR_RETURN(void* residual, Grow(scratch_[kResidual], t * hidden * es));
  RAMI_ASSIGN_OR_RETURN(void* dx, Grow(scratch_[kDelta], t * hidden * es));
  RAMI_ASSIGN_OR_RETURN(void* normed, Grow(scratch_[kNormed], t * hidden * es));
  RAMI_ASSIGN_OR_RETURN(void* qkv, Grow(scratch_[kQkv], t * (Hq + 2 * Hkv) * D * es));
  RAMI_ASSIGN_OR_RETURN(void* q, Grow(scratch_[kQ], t * Hq * D * es));
  RAMI_ASSIGN_OR_RETURN(void* k, Grow(scratch_[kK], t * Hkv * D * es));
  RAMI_ASSIGN_OR_RETURN(void* v, Grow(scratch_[kV], t * Hkv * D * es));
  RAMI_ASSIGN_OR_RETURN(void* attn, Grow(scratch_[kAttn], t * Hq * D * es));
  RAMI_ASSIGN_OR_RETURN(void* gate_up, Grow(scratch_[kGateUp], t * 2 * I * es));
  RAMI_ASSIGN_OR_RETURN(void* act, Grow(scratch_[kAct], t * I * es));
  RAMI_ASSIGN_OR_RETURN(void* alpha_all, Grow(scratch_[kAlpha], static_cast<size_t>(L) * t * Hkv));
  RAMI_ASSIGN_OR_RETURN(void* selected, Grow(scratch_[kSelected], rows * hidden * es));
  RAMI_ASSIGN_OR_RETURN(void* logits,
                        Grow(scratch_[kLogits], static_cast<size_t>(rows) * d.vocab * es));

  // Teacher forcing (tests): the given decisions in plan order replace the device's below.
  const bool force = borrowed && hook_.forced != nullptr;
  const bool record = borrowed && hook_.own != nullptr;
  const size_t per_layer = t * Hkv;
  RAMI_ASSIGN_OR_RETURN(void* forced, Grow(scratch_[kForced], force ? L * per_layer : 1));
  RAMI_ASSIGN_OR_RETURN(void* own, Grow(scratch_[kOwn], record ? L * per_layer : 1));
  std::vector<uint8_t> forced_plan;
  if (force) {
    if (hook_.forced->size() != L * per_layer) {
      return absl::InvalidArgumentError("CUDA backend: forced decisions of the wrong size");
    }
    forced_plan.resize(L * per_layer);
    for (int layer = 0; layer < L; ++layer) {
      for (size_t c = 0, token = 0; c < chunks.size(); ++c) {
        for (size_t i = 0; i < chunks[c].tokens.size(); ++i, ++token) {
          std::memcpy(&forced_plan[layer * per_layer + (plan.chunk_first[c] + i) * Hkv],
                      &(*hook_.forced)[layer * per_layer + token * Hkv], Hkv);
        }
      }
    }
    // Pageable: the call returns once the data is staged, so forced_plan may die after it.
    RAMI_CUDA_OK(cudaMemcpyAsync(forced, forced_plan.data(), forced_plan.size(),
                                 cudaMemcpyHostToDevice, stream_));
  }

  kernels::KvCacheCudaView view{.k_pool = k_pool_,
                                .v_pool = v_pool_,
                                .page_size = page_size_,
                                .head_dim = D,
                                .window = cache.policy().window,
                                .dtype = dtype};
  tables_gpu_->FillView(&view);
  if (!cache.policy().evicts()) view.flags = nullptr;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  RAMI_CUDA_OK(kernels::EmbeddingCuda({.tokens = tokens,
                                       .table = weights_->embed(),
                                       .out = residual,
                                       .num_tokens = T,
                                       .hidden = hidden,
                                       .vocab_start = d.vocab_start,
                                       .vocab_local = d.vocab,
                                       .dtype = dtype},
                                      stream_));
  for (int layer = 0; layer < L; ++layer) {
    const DeviceLayerWeights& w = weights_->layer(layer);
    const bool first = layer == 0;
    uint8_t* alpha = static_cast<uint8_t*>(alpha_all) + static_cast<size_t>(layer) * t * Hkv;
    const int32_t* ts = token_stream + static_cast<size_t>(layer) * T;
    // Attention block: residual (+= previous delta), norm, QKV, q/k norm + decision + RoPE.
    RAMI_CUDA_OK(kernels::RmsNormTypedCuda({.x = first ? residual : dx,
                                            .residual = first ? nullptr : residual,
                                            .weight = w.input_norm,
                                            .out = normed,
                                            .rows = T,
                                            .cols = hidden,
                                            .eps = eps,
                                            .dtype = dtype},
                                           stream_));
    const int qkv_width = (Hq + 2 * Hkv) * D;
    RAMI_RETURN_IF_ERROR(Gemm(normed, w.qkv, qkv, T, qkv_width, hidden));
    if (w.qkv_bias != nullptr) {
      RAMI_CUDA_OK(BiasAddCuda({qkv, w.qkv_bias, T, qkv_width, dtype}, stream_));
    }
    RAMI_CUDA_OK(
        kernels::QkvPrepCuda({.qkv = qkv,
                              .q = q,
                              .k = k,
                              .v = v,
                              .q_norm = w.q_norm,
                              .k_norm = w.k_norm,
                              .positions = positions,
                              .inv_freq = inv_freq_,
                              .alpha = borrowed ? alpha : nullptr,
                              .num_tokens = T,
                              .num_q_heads = Hq,
                              .num_kv_heads = Hkv,
                              .head_dim = D,
                              .eps = eps,
                              .attention_scale = cpu_->rope().attention_scale,
                              .alpha_scale = static_cast<float>(c.dms.alpha_scale),
                              .alpha_offset = static_cast<float>(c.dms.initial_alpha_offset),
                              .dtype = dtype},
                             stream_));
    if (record) {
      RAMI_CUDA_OK(cudaMemcpyAsync(static_cast<uint8_t*>(own) + layer * per_layer, alpha, per_layer,
                                   cudaMemcpyDeviceToDevice, stream_));
    }
    if (force) {
      RAMI_CUDA_OK(cudaMemcpyAsync(alpha, static_cast<uint8_t*>(forced) + layer * per_layer,
                                   per_layer, cudaMemcpyDeviceToDevice, stream_));
    }
    RAMI_CUDA_OK(kernels::KvWriteCuda({.cache = view,
                                       .k = k,
                                       .v = v,
                                       .alpha = borrowed && write_decisions ? alpha : nullptr,
                                       .token_stream = ts,
                                       .positions = positions,
                                       .num_tokens = T,
                                       .num_kv_heads = Hkv},
                                      stream_));
    if (plan.num_decode > 0) {
      RAMI_CUDA_OK(kernels::DecodeAttentionCuda({.cache = view,
                                                 .q = q,
                                                 .out = attn,
                                                 .token_stream = ts,
                                                 .positions = positions,
                                                 .num_tokens = plan.num_decode,
                                                 .num_q_heads = Hq,
                                                 .num_kv_heads = Hkv,
                                                 .scale = scale,
                                                 .num_splits = splits.num_splits,
                                                 .keys_per_split = splits.keys_per_split,
                                                 .partial_out = static_cast<float*>(partial_out),
                                                 .partial_lse = static_cast<float*>(partial_lse)},
                                                stream_));
    }
    RAMI_CUDA_OK(
        kernels::PrefillAttentionCuda({.cache = view,
                                       .q = q,
                                       .out = attn,
                                       .token_stream = ts,
                                       .positions = positions,
                                       .tiles = static_cast<const kernels::PrefillTile*>(tiles_dev),
                                       .num_tiles = static_cast<int>(tiles.size()),
                                       .num_q_heads = Hq,
                                       .num_kv_heads = Hkv,
                                       .scale = scale},
                                      stream_));
    RAMI_RETURN_IF_ERROR(Gemm(attn, w.o_proj, dx, T, hidden, Hq * D));
    if (w.o_bias != nullptr) {
      RAMI_CUDA_OK(BiasAddCuda({dx, w.o_bias, T, hidden, dtype}, stream_));
    }
    // MLP block.
    RAMI_CUDA_OK(kernels::RmsNormTypedCuda({.x = dx,
                                            .residual = residual,
                                            .weight = w.post_norm,
                                            .out = normed,
                                            .rows = T,
                                            .cols = hidden,
                                            .eps = eps,
                                            .dtype = dtype},
                                           stream_));
    RAMI_RETURN_IF_ERROR(Gemm(normed, w.gate_up, gate_up, T, 2 * I, hidden));
    RAMI_CUDA_OK(kernels::SwigluCuda(
        {.gate_up = gate_up, .out = act, .rows = T, .cols = I, .dtype = dtype}, stream_));
    RAMI_RETURN_IF_ERROR(Gemm(act, w.down, dx, T, hidden, I));
  }
  // Final norm; the logits rows gathered (an embedding lookup over the step's rows); LM head.
  RAMI_CUDA_OK(kernels::RmsNormTypedCuda({.x = dx,
                                          .residual = residual,
                                          .weight = weights_->final_norm(),
                                          .out = normed,
                                          .rows = T,
                                          .cols = hidden,
                                          .eps = eps,
                                          .dtype = dtype},
                                         stream_));
  RAMI_CUDA_OK(kernels::EmbeddingCuda({.tokens = logit_tokens,
                                       .table = normed,
                                       .out = selected,
                                       .num_tokens = rows,
                                       .hidden = hidden,
                                       .vocab_start = 0,
                                       .vocab_local = T,
                                       .dtype = dtype},
                                      stream_));
  RAMI_RETURN_IF_ERROR(Gemm(selected, weights_->lm_head(), logits, rows, d.vocab, hidden));

  // 5. Results: logits and the step's decisions, copied back once the stream drains.
  std::vector<uint8_t> raw(static_cast<size_t>(rows) * d.vocab * es);
  std::vector<uint8_t> decisions(write_decisions ? static_cast<size_t>(L) * t * Hkv : 0);
  RAMI_CUDA_OK(cudaMemcpyAsync(raw.data(), logits, raw.size(), cudaMemcpyDeviceToHost, stream_));
  if (write_decisions) {
    RAMI_CUDA_OK(cudaMemcpyAsync(decisions.data(), alpha_all, decisions.size(),
                                 cudaMemcpyDeviceToHost, stream_));
  }
  std::vector<uint8_t> own_plan(record ? L * per_layer : 0);
  if (record) {
    RAMI_CUDA_OK(
        cudaMemcpyAsync(own_plan.data(), own, own_plan.size(), cudaMemcpyDeviceToHost, stream_));
  }
  RAMI_CUDA_OK(cudaStreamSynchronize(stream_));
  if (record) {
    hook_.own->assign(L * per_layer, 0);
    for (int layer = 0; layer < L; ++layer) {
      for (size_t c = 0, token = 0; c < chunks.size(); ++c) {
        for (size_t i = 0; i < chunks[c].tokens.size(); ++i, ++token) {
          std::memcpy(&(*hook_.own)[layer * per_layer + token * Hkv],
                      &own_plan[layer * per_layer + (plan.chunk_first[c] + i) * Hkv], Hkv);
        }
      }
    }
  }
  ForwardResult result;
  result.vocab_size = c.vocab_size;
  result.logits.resize(raw.size() / es);
  if (dtype == kernels::DeviceDType::kF32) {
    std::memcpy(result.logits.data(), raw.data(), raw.size());
  } else {
    for (size_t i = 0; i < result.logits.size(); ++i) {
      uint16_t b;
      std::memcpy(&b, raw.data() + 2 * i, 2);
      result.logits[i] = BF16ToF32(b);
    }
  }
  result.first_row = plan.first_row;
  // The device's decisions become the host's flags (token t's α flags position t − 1), so
  // that CommitAppend promotes and evicts as the device's attention saw it.
  if (write_decisions) {
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
