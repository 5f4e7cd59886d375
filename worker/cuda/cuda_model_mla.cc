// The DeepSeek-V2/V3 layer on the CUDA engine (CudaModel::EnqueueMlaLayer, EnqueueMoe): the
// device twin of worker/cpu/mla_layer.cc and worker/cpu/moe.cc, the same math in the same order:
//   x = RMSNorm(residual += delta);  [DMS-MLA adapter: one decision per (token, layer)]
//   q = q_b(RMSNorm(q_a(x))) or q_proj(x);  RoPE on each head's rope part
//   rows = kv_a(x);  RMSNorm on the latent part;  RoPE on the rope key  → cache row, K-only
//   q_latent_h = [W_uk_hᵀ q_nope_h | q_rope_h]   (one strided batched GEMM over the heads)
//   latent_h = Σ softmax(scale · q_latent_h · row) row[:kv_lora]   (MlaDecodeAttentionCuda)
//   o_h = W_uv_h · latent_h   (one strided batched GEMM);  residual += AllReduce(o_proj(o))
//   x = RMSNorm(residual += delta);  delta = AllReduce(dense MLP(x) or MoE(x))
//
// Every token of a step — decode tokens and prefill chunks alike — goes through the decode
// kernel after KvWriteCuda has stored the step's rows: a prefill token sees its chunk's earlier
// rows by position (keys ≤ pos), as the CPU's MlaAttentionCpu does. Correct for any chunk, but
// a prefill token re-reads every earlier row on its own (no query tiling): a tiled MLA prefill
// kernel is future work.
//
// The MoE routing (fp32 router logits, MoeRoutingCuda) is copied to the host each MoE layer:
// RunMoeExpertsCuda sizes its per-expert GEMMs from it. That host synchronization is why
// DeepSeek steps are never captured as CUDA graphs (cuda_model.cc runs them eagerly); the
// shared experts are enqueued before the host waits, so the device works while it does.
#include <algorithm>
#include <climits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "base/status_macros.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/kv_update.h"
#include "kernels/cuda/logits_gather.h"
#include "kernels/cuda/mla_attention.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/moe_experts.h"
#include "kernels/cuda/rope.h"
#include "worker/cuda/cuda_model.h"
#include "worker/cuda/cuda_status.h"
#include "worker/engine/moe_routing_params.h"

namespace rami::cuda {

using checkpoint::MlaConfig;
using checkpoint::ModelConfig;
using checkpoint::MoeConfig;
using checkpoint::ShardDims;
using engine::CudaStepPlan;
using engine::MoeRoutingParamsFor;

namespace {

// DeepSeek's q_a_layernorm and kv_a_layernorm use the RMSNorm default eps, not rms_norm_eps
// (as worker/cpu/mla_layer.cc).
constexpr float kLoraNormEps = 1e-6f;
// MlaDecodeAttentionCuda takes at most 65535 query tokens per launch (its grid).
constexpr int kMaxAttentionTokens = 65535;

kernels::GemmDtype GemmDtypeOf(kernels::DeviceDType dtype) {
  return dtype == kernels::DeviceDType::kF32 ? kernels::GemmDtype::kF32 : kernels::GemmDtype::kBf16;
}

// p + count elements of `es` bytes.
template <typename T>
T* Advance(T* p, int64_t count, size_t es) {
  using Byte = std::conditional_t<std::is_const_v<T>, const char, char>;
  return reinterpret_cast<T*>(reinterpret_cast<Byte*>(p) + count * static_cast<int64_t>(es));
}

}  // namespace

absl::Status CudaModel::PrepareMlaStep(const CudaStepPlan& plan, StepArgs* a) const {
  const ModelConfig& c = config();
  const MlaConfig& m = c.mla;
  const MoeConfig& moe = c.moe;
  const ShardDims& d = shape_.dims();
  const size_t es = kernels::DeviceDTypeSize(options_.dtype);
  const size_t t = static_cast<size_t>(a->num_tokens);
  const size_t heads = static_cast<size_t>(d.q_heads);
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  StepArgs::Mla& x = a->mla;
  if (m.q_lora_rank > 0) {
    RAMI_ASSIGN_OR_RETURN(x.q_a, Grow(scratch_[kMlaQa], t * m.q_lora_rank * es));
  }
  RAMI_ASSIGN_OR_RETURN(x.q, Grow(scratch_[kMlaQ], t * heads * m.qk_head_dim() * es));
  RAMI_ASSIGN_OR_RETURN(x.rows, Grow(scratch_[kMlaRows], t * m.latent_row() * es));
  RAMI_ASSIGN_OR_RETURN(x.q_latent, Grow(scratch_[kMlaQLatent], t * heads * m.latent_row() * es));
  RAMI_ASSIGN_OR_RETURN(x.latent, Grow(scratch_[kMlaLatent], t * heads * m.kv_lora_rank * es));
  RAMI_ASSIGN_OR_RETURN(x.attn, Grow(scratch_[kMlaAttn], t * heads * m.v_head_dim * es));

  // Splits over every token (prefill ones too): a prefill token at position p sees ≤ p + 1
  // keys, a decode token its stream's kept + window — a bound is all the plan needs. Balanced
  // (keys_per_split 0): each query cuts its own keys.
  int64_t max_keys = plan.max_decode_keys;
  for (int i = plan.num_decode; i < plan.num_tokens; ++i) {
    max_keys = std::max<int64_t>(max_keys, int64_t{plan.positions[i]} + 1);
  }
  a->splits = kernels::PlanMlaDecodeSplits(std::max<int64_t>(max_keys, 1),
                                           std::max(a->num_tokens, 1), d.q_heads, num_sms_);
  a->splits.keys_per_split = 0;
  if (a->splits.num_splits > 1) {
    const size_t partial = t * heads * a->splits.num_splits;
    RAMI_ASSIGN_OR_RETURN(void* out, Grow(scratch_[kPartialOut], partial * m.kv_lora_rank * 4));
    RAMI_ASSIGN_OR_RETURN(void* lse, Grow(scratch_[kPartialLse], partial * 4));
    a->partial_out = static_cast<float*>(out);
    a->partial_lse = static_cast<float*>(lse);
  }
  if (!moe.enabled) return absl::OkStatus();

  // The shared experts run through the dense MLP's buffers (Run sized them for the dense width).
  const size_t inter = static_cast<size_t>(std::max(d.intermediate, d.shared_intermediate));
  RAMI_ASSIGN_OR_RETURN(a->gate_up, Grow(scratch_[kGateUp], t * 2 * inter * es));
  RAMI_ASSIGN_OR_RETURN(a->act, Grow(scratch_[kAct], t * inter * es));
  if (options_.dtype != kernels::DeviceDType::kF32) {
    RAMI_ASSIGN_OR_RETURN(void* router_x, Grow(scratch_[kMoeX], t * hidden * 4));
    x.router_x = static_cast<float*>(router_x);
    RAMI_ASSIGN_OR_RETURN(void* row_ids, Grow(scratch_[kMoeRows], t * 4));
    std::vector<int32_t> identity(t);
    std::iota(identity.begin(), identity.end(), 0);
    // Pageable: the call returns once the data is staged.
    RAMI_CUDA_OK(cudaMemcpyAsync(row_ids, identity.data(), t * 4, cudaMemcpyHostToDevice, stream_));
    x.row_ids = static_cast<const int32_t*>(row_ids);
  }
  const size_t slots = t * moe.experts_per_token;
  RAMI_ASSIGN_OR_RETURN(void* logits, Grow(scratch_[kMoeLogits], t * moe.num_experts * 4));
  x.router_logits = static_cast<float*>(logits);
  RAMI_ASSIGN_OR_RETURN(void* ids, Grow(scratch_[kMoeIds], slots * 4));
  x.expert_ids = static_cast<int32_t*>(ids);
  RAMI_ASSIGN_OR_RETURN(void* weights, Grow(scratch_[kMoeWeights], slots * 4));
  x.expert_weights = static_cast<float*>(weights);
  if (moe.num_shared_experts > 0) {
    RAMI_ASSIGN_OR_RETURN(x.shared_out, Grow(scratch_[kMoeShared], t * hidden * es));
  }
  x.moe_workspace_bytes =
      kernels::MoeExpertsWorkspaceBytes(a->num_tokens, moe.experts_per_token, c.hidden_size,
                                        d.moe_intermediate, GemmDtypeOf(options_.dtype));
  RAMI_ASSIGN_OR_RETURN(x.moe_workspace, Grow(scratch_[kMoeWorkspace], x.moe_workspace_bytes));
  // Host copies of a layer's ids and weights (Run synchronized the stream before this: the
  // previous step no longer reads them).
  if (const size_t bytes = slots * 8; bytes > moe_pinned_bytes_) {
    if (moe_pinned_ != nullptr) RAMI_CUDA_OK(cudaFreeHost(moe_pinned_));
    moe_pinned_ = nullptr;
    moe_pinned_bytes_ = 0;
    const size_t capacity = std::max<size_t>(bytes, 4096);
    RAMI_CUDA_OK(cudaMallocHost(&moe_pinned_, capacity));
    moe_pinned_bytes_ = capacity;
  }
  return absl::OkStatus();
}

absl::Status CudaModel::EnqueueMlaLayer(const StepArgs& a, int layer) const {
  const ModelConfig& c = config();
  const MlaConfig& m = c.mla;
  const ShardDims& d = shape_.dims();
  const DeviceLayerWeights& w = weights_->layer(layer);
  const DeviceMlaWeights& mw = w.mla;
  const kernels::DeviceDType dtype = options_.dtype;
  const size_t es = kernels::DeviceDTypeSize(dtype);
  const int T = a.num_tokens, H = d.q_heads, hidden = c.hidden_size;
  const int nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim, qk = m.qk_head_dim();
  const int lora = m.kv_lora_rank, row = m.latent_row(), v_dim = m.v_head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const bool first = layer == 0;
  // One decision per (token, layer): the latent stream is the layer's only "KV head".
  const size_t per_layer = static_cast<size_t>(T);
  uint8_t* alpha = a.alpha_all + layer * per_layer;
  const int32_t* ts = a.token_stream + static_cast<size_t>(layer) * T;
  const StepArgs::Mla& x = a.mla;

  // Attention block: residual (+= previous delta), norm; DMS-MLA (dms.md §6): the adapter on
  // the layer input, replicated on every rank like the latent it decides for, one decision per
  // (token, layer) — the latent stream is the layer's only "KV head".
  RAMI_RETURN_IF_ERROR(Norm(first ? a.residual : a.dx, first ? nullptr : a.residual, w.input_norm,
                            a.normed, T, hidden, eps));
  if (c.dms.enabled) RAMI_RETURN_IF_ERROR(EnqueueDecisions(a, w, layer, /*heads=*/1));

  // Queries [T, H, nope | rope], the rope parts rotated in place.
  const void* q_in = a.normed;
  int q_in_dim = hidden;
  if (m.q_lora_rank > 0) {
    RAMI_RETURN_IF_ERROR(Gemm(a.normed, mw.q_a, x.q_a, T, m.q_lora_rank, hidden));
    if (mw.q_a_bias != nullptr) {
      RAMI_CUDA_OK(kernels::BiasAddCuda({x.q_a, mw.q_a_bias, T, m.q_lora_rank, dtype}, stream_));
    }
    RAMI_RETURN_IF_ERROR(Norm(x.q_a, nullptr, mw.q_a_norm, x.q_a, T, m.q_lora_rank, kLoraNormEps));
    q_in = x.q_a;
    q_in_dim = m.q_lora_rank;
  }
  RAMI_RETURN_IF_ERROR(Gemm(q_in, mw.q_b, x.q, T, H * qk, q_in_dim));
  const float rope_scale = shape_.rope().attention_scale;
  RAMI_CUDA_OK(kernels::RopeCuda({.x = x.q,
                                  .positions = a.positions,
                                  .inv_freq = inv_freq_,
                                  .num_tokens = T,
                                  .heads = H,
                                  .token_stride = int64_t{H} * qk,
                                  .head_stride = qk,
                                  .offset = nope,
                                  .dim = rope,
                                  .attention_scale = rope_scale,
                                  .interleaved = m.rope_interleave,
                                  .dtype = dtype},
                                 stream_));

  // Cache rows [T, lora | rope]: the latent normed in place, the rope key rotated in place.
  RAMI_RETURN_IF_ERROR(Gemm(a.normed, mw.kv_a, x.rows, T, row, hidden));
  if (mw.kv_a_bias != nullptr) {
    RAMI_CUDA_OK(kernels::BiasAddCuda({x.rows, mw.kv_a_bias, T, row, dtype}, stream_));
  }
  RAMI_CUDA_OK(kernels::RmsNormTypedCuda({.x = x.rows,
                                          .weight = mw.kv_a_norm,
                                          .out = x.rows,
                                          .rows = T,
                                          .cols = lora,
                                          .eps = kLoraNormEps,
                                          .dtype = dtype,
                                          .x_stride = row,
                                          .out_stride = row},
                                         stream_));
  RAMI_CUDA_OK(kernels::RopeCuda({.x = x.rows,
                                  .positions = a.positions,
                                  .inv_freq = inv_freq_,
                                  .num_tokens = T,
                                  .heads = 1,
                                  .token_stride = row,
                                  .head_stride = row,
                                  .offset = lora,
                                  .dim = rope,
                                  .attention_scale = rope_scale,
                                  .interleaved = m.rope_interleave,
                                  .dtype = dtype},
                                 stream_));

  // Absorbed queries: q_latent[t, h, :lora] = W_uk_t[h] · q_nope[t, h] for every head in one
  // strided batched GEMM, then the rotated rope parts copied next to them.
  RAMI_RETURN_IF_ERROR(GemmStrided({.x = x.q,
                                    .w = mw.w_uk_t,
                                    .y = x.q_latent,
                                    .m = T,
                                    .n = lora,
                                    .k = nope,
                                    .ldx = H * qk,
                                    .ldy = H * row,
                                    .batch = H,
                                    .stride_x = qk,
                                    .stride_w = int64_t{lora} * nope,
                                    .stride_y = row}));
  RAMI_CUDA_OK(cudaMemcpy2DAsync(
      Advance(x.q_latent, lora, es), row * es, Advance(static_cast<const void*>(x.q), nope, es),
      qk * es, rope * es, static_cast<size_t>(T) * H, cudaMemcpyDeviceToDevice, stream_));

  // The step's rows into the K-only cache, with the decisions when the policy is dms.
  RAMI_CUDA_OK(kernels::KvWriteCuda({.cache = a.view,
                                     .k = x.rows,
                                     .v = nullptr,
                                     .alpha = c.dms.enabled && a.write_decisions ? alpha : nullptr,
                                     .token_stream = ts,
                                     .positions = a.positions,
                                     .num_tokens = T,
                                     .num_kv_heads = 1},
                                    stream_));
  // Attention of every token (prefill included) over the cache, in launches of ≤ 65535 tokens.
  const int splits = a.splits.num_splits;
  for (int t0 = 0; t0 < T; t0 += kMaxAttentionTokens) {
    const int n = std::min(kMaxAttentionTokens, T - t0);
    const int64_t partial_rows = int64_t{t0} * H * splits;
    RAMI_CUDA_OK(kernels::MlaDecodeAttentionCuda(
        {.cache = a.view,
         .q = Advance(static_cast<const void*>(x.q_latent), int64_t{t0} * H * row, es),
         .out = Advance(x.latent, int64_t{t0} * H * lora, es),
         .token_stream = ts + t0,
         .positions = a.positions + t0,
         .num_tokens = n,
         .num_heads = H,
         .latent_dim = lora,
         .scale = m.softmax_scale,
         .num_splits = splits,
         .keys_per_split = a.splits.keys_per_split,
         .partial_out = splits > 1 ? a.partial_out + partial_rows * lora : nullptr,
         .partial_lse = splits > 1 ? a.partial_lse + partial_rows : nullptr},
        stream_));
  }
  // Values: attn[t, h, :] = W_uv[h] · latent[t, h] (one strided batched GEMM), then o_proj
  // over this rank's heads, summed over the ranks (the bias on rank 0 only).
  RAMI_RETURN_IF_ERROR(GemmStrided({.x = x.latent,
                                    .w = mw.w_uv,
                                    .y = x.attn,
                                    .m = T,
                                    .n = v_dim,
                                    .k = lora,
                                    .ldx = H * lora,
                                    .ldy = H * v_dim,
                                    .batch = H,
                                    .stride_x = lora,
                                    .stride_w = int64_t{v_dim} * lora,
                                    .stride_y = v_dim}));
  RAMI_RETURN_IF_ERROR(EnqueueOutputProjection(a, x.attn, w, H * v_dim));

  // Dense MLP (layers < first_k_dense_replace) or the mixture of experts.
  RAMI_RETURN_IF_ERROR(Norm(a.dx, a.residual, w.post_norm, a.normed, T, hidden, eps));
  if (c.moe.IsMoeLayer(layer)) return EnqueueMoe(a, w.moe);
  RAMI_RETURN_IF_ERROR(EnqueueSwigluMlp(a, w.gate_up, w.down, d.intermediate, a.dx));
  return AllReduce(a.dx, static_cast<size_t>(T) * hidden);
}

absl::Status CudaModel::EnqueueSwigluMlp(const StepArgs& a, const void* gate_up, const void* down,
                                         int inter, void* out) const {
  const int T = a.num_tokens, hidden = config().hidden_size;
  RAMI_RETURN_IF_ERROR(Gemm(a.normed, gate_up, a.gate_up, T, 2 * inter, hidden));
  RAMI_CUDA_OK(kernels::SwigluCuda(
      {.gate_up = a.gate_up, .out = a.act, .rows = T, .cols = inter, .dtype = options_.dtype},
      stream_));
  return Gemm(a.act, down, out, T, hidden, inter);
}

absl::Status CudaModel::EnqueueMoe(const StepArgs& a, const DeviceMoeWeights& w) const {
  const ModelConfig& c = config();
  const MoeConfig& moe = c.moe;
  const ShardDims& d = shape_.dims();
  const kernels::DeviceDType dtype = options_.dtype;
  const int T = a.num_tokens, hidden = c.hidden_size, k = moe.experts_per_token;
  const StepArgs::Mla& x = a.mla;
  if (w.empty() || moe_pinned_ == nullptr || moe_event_ == nullptr || x.expert_ids == nullptr) {
    return absl::InternalError("CUDA backend: an MoE layer without its weights or buffers");
  }
  // Router logits in fp32 from the fp32 view of the normed input (DeepSeek's own precision).
  const float* router_x = static_cast<const float*>(a.normed);
  if (dtype != kernels::DeviceDType::kF32) {
    RAMI_CUDA_OK(kernels::LogitsGatherCuda({.in = a.normed,
                                            .rows = x.row_ids,
                                            .out = x.router_x,
                                            .num_rows = T,
                                            .rows_per_rank = T,
                                            .vocab_local = hidden,
                                            .world = 1,
                                            .vocab = hidden,
                                            .dtype = dtype},
                                           stream_));
    router_x = x.router_x;
  }
  RAMI_RETURN_IF_ERROR(gemm_->Run({.x = router_x,
                                   .w = w.router,
                                   .y = x.router_logits,
                                   .m = T,
                                   .n = moe.num_experts,
                                   .k = hidden,
                                   .dtype = kernels::GemmDtype::kF32},
                                  stream_));
  kernels::MoeRoutingParams routing = MoeRoutingParamsFor(moe, T);
  routing.logits = x.router_logits;
  routing.correction_bias = w.correction_bias;
  routing.expert_ids = x.expert_ids;
  routing.weights = x.expert_weights;
  RAMI_CUDA_OK(kernels::MoeRoutingCuda(routing, stream_));
  const size_t slots = static_cast<size_t>(T) * k;
  auto* ids_host = static_cast<int32_t*>(moe_pinned_);
  auto* weights_host = reinterpret_cast<float*>(ids_host + slots);
  RAMI_CUDA_OK(cudaMemcpyAsync(ids_host, x.expert_ids, slots * sizeof(int32_t),
                               cudaMemcpyDeviceToHost, stream_));
  RAMI_CUDA_OK(cudaMemcpyAsync(weights_host, x.expert_weights, slots * sizeof(float),
                               cudaMemcpyDeviceToHost, stream_));
  RAMI_CUDA_OK(cudaEventRecord(moe_event_, stream_));
  // The shared experts (a dense MLP of this rank's slice) run while the host waits.
  if (w.shared_gate_up != nullptr) {
    RAMI_RETURN_IF_ERROR(
        EnqueueSwigluMlp(a, w.shared_gate_up, w.shared_down, d.shared_intermediate, x.shared_out));
  }
  RAMI_CUDA_OK(cudaEventSynchronize(moe_event_));
  RAMI_RETURN_IF_ERROR(kernels::RunMoeExpertsCuda({.x = a.normed,
                                                   .out = a.dx,
                                                   .expert_ids = ids_host,
                                                   .weights = weights_host,
                                                   .gate_up = w.gate_up.data(),
                                                   .down = w.down.data(),
                                                   .num_tokens = T,
                                                   .top_k = k,
                                                   .num_experts = moe.num_experts,
                                                   .hidden = hidden,
                                                   .inter = d.moe_intermediate,
                                                   .dtype = GemmDtypeOf(dtype),
                                                   .workspace = x.moe_workspace,
                                                   .workspace_bytes = x.moe_workspace_bytes},
                                                  *gemm_, stream_));
  // delta = routed + shared, the CPU's order (worker/cpu/moe.cc): an element-wise add as a bias
  // add over one row, in pieces of ≤ INT_MAX elements.
  if (w.shared_gate_up != nullptr) {
    const int64_t total = int64_t{T} * hidden;
    const size_t es = kernels::DeviceDTypeSize(dtype);
    for (int64_t at = 0; at < total; at += INT_MAX) {
      const int n = static_cast<int>(std::min<int64_t>(INT_MAX, total - at));
      RAMI_CUDA_OK(kernels::BiasAddCuda(
          {Advance(a.dx, at, es), Advance(static_cast<const void*>(x.shared_out), at, es), 1, n,
           dtype},
          stream_));
    }
  }
  return AllReduce(a.dx, static_cast<size_t>(T) * hidden);
}

}  // namespace rami::cuda
