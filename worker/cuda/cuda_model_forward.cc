// The forward pass's launches, embedding to logits (CudaModel::Enqueue): kernels, cuBLASLt
// GEMMs and NCCL collectives on the compute stream only, so that a decode step can be captured
// as a CUDA graph; the host-side step preparation is in cuda_model.cc.
#include <cmath>

#include "base/status_macros.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/kv_update.h"
#include "kernels/cuda/qkv_prep.h"
#include "worker/cuda/bias_add.h"
#include "worker/cuda/cuda_model.h"
#include "worker/cuda/cuda_status.h"
#include "worker/cuda/dms_decisions.h"

namespace rami::cuda {

absl::Status CudaModel::AllReduce(void* data, size_t count) const {
  if (options_.world_size == 1) return absl::OkStatus();
  return device_comm_->AllReduceSumDevice(data, count, options_.dtype);
}

absl::Status CudaModel::Enqueue(const StepArgs& a) const {
  const ModelConfig& c = config();
  const ShardDims& d = cpu_->dims();
  const kernels::DeviceDType dtype = options_.dtype;
  const int L = c.num_layers, D = c.head_dim, hidden = c.hidden_size;
  const int Hq = d.q_heads, Hkv = d.kv_heads, I = d.intermediate;
  const int T = a.num_tokens;
  const bool adapter = c.dms.enabled && c.dms.separate_alpha;
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
    RAMI_CUDA_OK(kernels::RmsNormTypedCuda({.x = first ? a.residual : a.dx,
                                            .residual = first ? nullptr : a.residual,
                                            .weight = w.input_norm,
                                            .out = a.normed,
                                            .rows = T,
                                            .cols = hidden,
                                            .eps = eps,
                                            .dtype = dtype},
                                           stream_));
    const int qkv_width = (Hq + 2 * Hkv) * D;
    RAMI_RETURN_IF_ERROR(Gemm(a.normed, w.qkv, a.qkv, T, qkv_width, hidden));
    if (w.qkv_bias != nullptr) {
      RAMI_CUDA_OK(BiasAddCuda({a.qkv, w.qkv_bias, T, qkv_width, dtype}, stream_));
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
                              .attention_scale = cpu_->rope().attention_scale,
                              .alpha_scale = static_cast<float>(c.dms.alpha_scale),
                              .alpha_offset = static_cast<float>(c.dms.initial_alpha_offset),
                              .dtype = dtype},
                             stream_));
    if (adapter) {  // from the layer input, which the norm above left in `residual`
      RAMI_CUDA_OK(kernels::RmsNormTypedCuda({.x = a.residual,
                                              .weight = w.dms_alpha_norm,
                                              .out = a.alpha_x,
                                              .rows = T,
                                              .cols = hidden,
                                              .eps = eps,
                                              .dtype = dtype},
                                             stream_));
      RAMI_CUDA_OK(
          DmsAdapterDecisionCuda({.x = a.alpha_x,
                                  .w = w.dms_alpha,
                                  .bias = w.dms_alpha_bias,
                                  .alpha = alpha,
                                  .num_tokens = T,
                                  .num_kv_heads = Hkv,
                                  .hidden = hidden,
                                  .alpha_scale = static_cast<float>(c.dms.alpha_scale),
                                  .alpha_offset = static_cast<float>(c.dms.initial_alpha_offset),
                                  .dtype = dtype},
                                 stream_));
    }
    if (a.shared != nullptr) {  // per layer: KV head 0 of rank 0 decides for all
      const HeadZeroParams share{
          .alpha = alpha,
          .shared = a.shared,
          .num_tokens = T,
          .num_kv_heads = Hkv,
          .contribute = device_comm_ == nullptr || device_comm_->rank() == 0};
      RAMI_CUDA_OK(HeadZeroToFloatCuda(share, stream_));
      if (options_.world_size > 1) {
        RAMI_RETURN_IF_ERROR(
            device_comm_->AllReduceSumDevice(a.shared, T, kernels::DeviceDType::kF32));
      }
      RAMI_CUDA_OK(SpreadHeadZeroCuda(share, stream_));
    }
    if (a.own != nullptr) {
      RAMI_CUDA_OK(cudaMemcpyAsync(a.own + layer * per_layer, alpha, per_layer,
                                   cudaMemcpyDeviceToDevice, stream_));
    }
    if (a.forced != nullptr) {
      RAMI_CUDA_OK(cudaMemcpyAsync(alpha, a.forced + layer * per_layer, per_layer,
                                   cudaMemcpyDeviceToDevice, stream_));
    }
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
    // O projection: each rank's heads' share, summed over the ranks (the bias lives on rank 0
    // only, so the sum adds it once).
    RAMI_RETURN_IF_ERROR(Gemm(a.attn, w.o_proj, a.dx, T, hidden, Hq * D));
    if (w.o_bias != nullptr) {
      RAMI_CUDA_OK(BiasAddCuda({a.dx, w.o_bias, T, hidden, dtype}, stream_));
    }
    RAMI_RETURN_IF_ERROR(AllReduce(a.dx, static_cast<size_t>(T) * hidden));
    // MLP block (intermediate split over the ranks; the down projection summed).
    RAMI_CUDA_OK(kernels::RmsNormTypedCuda({.x = a.dx,
                                            .residual = a.residual,
                                            .weight = w.post_norm,
                                            .out = a.normed,
                                            .rows = T,
                                            .cols = hidden,
                                            .eps = eps,
                                            .dtype = dtype},
                                           stream_));
    RAMI_RETURN_IF_ERROR(Gemm(a.normed, w.gate_up, a.gate_up, T, 2 * I, hidden));
    RAMI_CUDA_OK(kernels::SwigluCuda(
        {.gate_up = a.gate_up, .out = a.act, .rows = T, .cols = I, .dtype = dtype}, stream_));
    RAMI_RETURN_IF_ERROR(Gemm(a.act, w.down, a.dx, T, hidden, I));
    RAMI_RETURN_IF_ERROR(AllReduce(a.dx, static_cast<size_t>(T) * hidden));
  }
  // Final norm; the logits rows gathered (an embedding lookup over the step's rows); LM head
  // over this rank's vocabulary slice; every rank's slice gathered.
  RAMI_CUDA_OK(kernels::RmsNormTypedCuda({.x = a.dx,
                                          .residual = a.residual,
                                          .weight = weights_->final_norm(),
                                          .out = a.normed,
                                          .rows = T,
                                          .cols = hidden,
                                          .eps = eps,
                                          .dtype = dtype},
                                         stream_));
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
