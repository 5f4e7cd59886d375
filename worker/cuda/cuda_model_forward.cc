// The forward pass's launches, embedding to logits (CudaModel::Enqueue): kernels, cuBLASLt
// GEMMs and NCCL collectives on the compute stream only, so that a decode step can be captured
// as a CUDA graph; the host-side step preparation is in cuda_model.cc.
#include <cmath>

#include "base/status_macros.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/dms_decision.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/kv_update.h"
#include "kernels/cuda/qkv_prep.h"
#include "worker/cuda/cuda_model.h"
#include "worker/cuda/cuda_status.h"

namespace rami::cuda {

using checkpoint::ModelConfig;
using checkpoint::ShardDims;

absl::Status CudaModel::AllReduce(void* data, size_t count) const {
  if (options_.world_size == 1) return absl::OkStatus();
  return device_comm_->AllReduceSumDevice(data, count, options_.dtype);
}

absl::Status CudaModel::Norm(const void* x, void* residual, const void* weight, void* out, int rows,
                             int cols, float eps) const {
  RAMI_CUDA_OK(kernels::RmsNormTypedCuda({.x = x,
                                          .residual = residual,
                                          .weight = weight,
                                          .out = out,
                                          .rows = rows,
                                          .cols = cols,
                                          .eps = eps,
                                          .dtype = options_.dtype},
                                         stream_));
  return absl::OkStatus();
}

absl::Status CudaModel::EnqueueDecisions(const StepArgs& a, const DeviceLayerWeights& w, int layer,
                                         int heads) const {
  const ModelConfig& c = config();
  const int T = a.num_tokens, hidden = c.hidden_size;
  const size_t per_layer = static_cast<size_t>(T) * heads;
  uint8_t* alpha = a.alpha_all + layer * per_layer;
  if (c.dms.enabled && c.dms.separate_alpha) {
    // The adapter reads the layer input, which the input norm left in `residual`.
    if (a.alpha_x == nullptr || w.dms_alpha == nullptr) {
      return absl::InternalError("CUDA backend: DMS adapter without its weights or buffer");
    }
    RAMI_RETURN_IF_ERROR(Norm(a.residual, nullptr, w.dms_alpha_norm, a.alpha_x, T, hidden,
                              static_cast<float>(c.rms_norm_eps)));
    RAMI_CUDA_OK(kernels::DmsAdapterDecisionCuda(
        {.x = a.alpha_x,
         .w = w.dms_alpha,
         .bias = w.dms_alpha_bias,
         .alpha = alpha,
         .num_tokens = T,
         .num_kv_heads = heads,
         .hidden = hidden,
         .alpha_scale = static_cast<float>(c.dms.alpha_scale),
         .alpha_offset = static_cast<float>(c.dms.initial_alpha_offset),
         .dtype = options_.dtype},
        stream_));
  }
  if (a.shared != nullptr) {  // per layer: KV head 0 of rank 0 decides for all
    const kernels::DmsHeadZeroParams share{
        .alpha = alpha,
        .shared = a.shared,
        .num_tokens = T,
        .num_kv_heads = heads,
        .contribute = device_comm_ == nullptr || device_comm_->rank() == 0};
    RAMI_CUDA_OK(kernels::DmsHeadZeroToFloatCuda(share, stream_));
    if (options_.world_size > 1) {
      RAMI_RETURN_IF_ERROR(
          device_comm_->AllReduceSumDevice(a.shared, T, kernels::DeviceDType::kF32));
    }
    RAMI_CUDA_OK(kernels::DmsSpreadHeadZeroCuda(share, stream_));
  }
  return absl::OkStatus();
}

absl::Status CudaModel::EnqueueOutputProjection(const StepArgs& a, const void* attn,
                                                const DeviceLayerWeights& w, int width) const {
  const int T = a.num_tokens, hidden = config().hidden_size;
  // Each rank's heads' share, summed over the ranks (the bias lives on rank 0 only, so the sum
  // adds it once).
  RAMI_RETURN_IF_ERROR(Gemm(attn, w.o_proj, a.dx, T, hidden, width));
  if (w.o_bias != nullptr) {
    RAMI_CUDA_OK(kernels::BiasAddCuda({a.dx, w.o_bias, T, hidden, options_.dtype}, stream_));
  }
  return AllReduce(a.dx, static_cast<size_t>(T) * hidden);
}

absl::Status CudaModel::Enqueue(const StepArgs& a) const {
  const ModelConfig& c = config();
  const ShardDims& d = shape_.dims();
  const kernels::DeviceDType dtype = options_.dtype;
  const int L = c.num_layers, D = c.head_dim, hidden = c.hidden_size;
  const int Hq = d.q_heads, Hkv = d.kv_heads;
  const int T = a.num_tokens;
  const bool borrowed = c.dms.enabled && !c.dms.separate_alpha;
  const size_t per_layer = static_cast<size_t>(T) * Hkv;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));

  // Vocab-parallel embedding: each rank writes its rows' vectors (zeros elsewhere), summed.
  RAMI_CUDA_OK(kernels::EmbeddingCuda({.tokens = a.tokens,
                                       .table = weights_->embed(),
                                       .out = a.residual,
                                       .num_tokens = T,
                                       .hidden = hidden,
                                       .vocab_start = d.vocab_start,
                                       .vocab_local = d.vocab,
                                       .dtype = dtype},
                                      stream_));
  RAMI_RETURN_IF_ERROR(AllReduce(a.residual, static_cast<size_t>(T) * hidden));
  for (int layer = 0; layer < L; ++layer) {
    if (c.mla.enabled) {  // DeepSeek: MLA, then the dense MLP or the MoE (cuda_model_mla.cc)
      RAMI_RETURN_IF_ERROR(EnqueueMlaLayer(a, layer));
      continue;
    }
    const DeviceLayerWeights& w = weights_->layer(layer);
    const bool first = layer == 0;
    uint8_t* alpha = a.alpha_all + layer * per_layer;
    const int32_t* ts = a.token_stream + static_cast<size_t>(layer) * T;
    // Attention block: residual (+= previous delta), norm, QKV, q/k norm + decision + RoPE.
    RAMI_RETURN_IF_ERROR(Norm(first ? a.residual : a.dx, first ? nullptr : a.residual, w.input_norm,
                              a.normed, T, hidden, eps));
    const int qkv_width = (Hq + 2 * Hkv) * D;
    RAMI_RETURN_IF_ERROR(Gemm(a.normed, w.qkv, a.qkv, T, qkv_width, hidden));
    if (w.qkv_bias != nullptr) {
      RAMI_CUDA_OK(kernels::BiasAddCuda({a.qkv, w.qkv_bias, T, qkv_width, dtype}, stream_));
    }
    RAMI_CUDA_OK(
        kernels::QkvPrepCuda({.qkv = a.qkv,
                              .q = a.q,
                              .k = a.k,
                              .v = a.v,
                              .q_norm = w.q_norm,
                              .k_norm = w.k_norm,
                              .positions = a.positions,
                              .inv_freq = inv_freq_,
                              .alpha = borrowed ? alpha : nullptr,
                              .num_tokens = T,
                              .num_q_heads = Hq,
                              .num_kv_heads = Hkv,
                              .head_dim = D,
                              .eps = eps,
                              .attention_scale = shape_.rope().attention_scale,
                              .alpha_scale = static_cast<float>(c.dms.alpha_scale),
                              .alpha_offset = static_cast<float>(c.dms.initial_alpha_offset),
                              .dtype = dtype},
                             stream_));
    if (c.dms.enabled) RAMI_RETURN_IF_ERROR(EnqueueDecisions(a, w, layer, Hkv));
    RAMI_CUDA_OK(
        kernels::KvWriteCuda({.cache = a.view,
                              .k = a.k,
                              .v = a.v,
                              .alpha = c.dms.enabled && a.write_decisions ? alpha : nullptr,
                              .token_stream = ts,
                              .positions = a.positions,
                              .num_tokens = T,
                              .num_kv_heads = Hkv},
                             stream_));
    if (a.num_decode > 0) {
      RAMI_CUDA_OK(kernels::DecodeAttentionCuda({.cache = a.view,
                                                 .q = a.q,
                                                 .out = a.attn,
                                                 .token_stream = ts,
                                                 .positions = a.positions,
                                                 .num_tokens = a.num_decode,
                                                 .num_q_heads = Hq,
                                                 .num_kv_heads = Hkv,
                                                 .scale = scale,
                                                 .num_splits = a.splits.num_splits,
                                                 .keys_per_split = a.splits.keys_per_split,
                                                 .partial_out = a.partial_out,
                                                 .partial_lse = a.partial_lse},
                                                stream_));
    }
    RAMI_CUDA_OK(kernels::PrefillAttentionCuda({.cache = a.view,
                                                .q = a.q,
                                                .out = a.attn,
                                                .token_stream = ts,
                                                .positions = a.positions,
                                                .tiles = a.tiles,
                                                .num_tiles = a.num_tiles,
                                                .num_q_heads = Hq,
                                                .num_kv_heads = Hkv,
                                                .scale = scale},
                                               stream_));
    RAMI_RETURN_IF_ERROR(EnqueueOutputProjection(a, a.attn, w, Hq * D));
    // MLP block (intermediate split over the ranks; the down projection summed).
    RAMI_RETURN_IF_ERROR(Norm(a.dx, a.residual, w.post_norm, a.normed, T, hidden, eps));
    RAMI_RETURN_IF_ERROR(EnqueueSwigluMlp(a, w.gate_up, w.down, d.intermediate, a.dx));
    RAMI_RETURN_IF_ERROR(AllReduce(a.dx, static_cast<size_t>(T) * hidden));
  }
  // Final norm; the logits rows gathered (an embedding lookup over the step's rows); LM head
  // over this rank's vocabulary slice; every rank's slice gathered.
  RAMI_RETURN_IF_ERROR(Norm(a.dx, a.residual, weights_->final_norm(), a.normed, T, hidden, eps));
  RAMI_CUDA_OK(kernels::EmbeddingCuda({.tokens = a.logit_tokens,
                                       .table = a.normed,
                                       .out = a.selected,
                                       .num_tokens = a.rows,
                                       .hidden = hidden,
                                       .vocab_start = 0,
                                       .vocab_local = T,
                                       .dtype = dtype},
                                      stream_));
  RAMI_RETURN_IF_ERROR(Gemm(a.selected, weights_->lm_head(), a.logits, a.rows, d.vocab, hidden));
  if (options_.world_size > 1) {
    RAMI_RETURN_IF_ERROR(device_comm_->AllGatherDevice(
        a.logits, static_cast<size_t>(a.rows) * d.vocab, a.gathered, dtype));
  }
  return absl::OkStatus();
}

}  // namespace rami::cuda
