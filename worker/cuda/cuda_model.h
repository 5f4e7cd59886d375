// CudaModel: the CUDA backend of one rank's shard (ForwardBackend): the shard's ModelShape
// (config, validation and reservation), its weights in the compute dtype (DeviceWeights),
// K/V in a device pool indexed by the host KvCache's page ids (an accounting-only pool on the
// host), page tables updated by per-step deltas (DeviceKvTables), and the forward pass as a
// sequence of kernels/cuda launches on one stream. Same contract as Model::RunReserved: full
// fp32 logits of the requested rows on the host, scored rows as scores (computed on the device);
// the step is committed or its reservation returned.
//
// Scope today: Llama, Qwen2, Qwen3 (incl. their DMS retrofits) and DeepSeek-V2/V3 (MLA with
// the K-only latent cache, dense first layers and MoE; DMS-MLA adapter decisions), any tensor-
// parallel world (NCCL on the compute stream: all-reduce of the embedding, after the O and
// down projections (MoE: after the experts); all-gather of the vocab-parallel logits). Decode
// steps of Llama-family models run as CUDA graphs per batch bucket; DeepSeek steps run eagerly
// (the MoE routing goes to the host every MoE layer: cuda_model_mla.cc). DMS decisions: borrowed
// neuron or adapter (dms_separate_alpha), per head or per layer. Not yet run on a GPU: see
// docs/gpu.md "GPU engine".
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/device_dtype.h"
#include "kernels/cuda/gemm.h"
#include "kernels/kv_copy.h"
#include "worker/checkpoint/model_weights.h"
#include "worker/collectives/nccl_collectives.h"
#include "worker/cuda/decode_graphs.h"
#include "worker/cuda/device_kv_tables_gpu.h"
#include "worker/cuda/device_sampler.h"
#include "worker/cuda/device_weights.h"
#include "worker/engine/cuda_step_host.h"
#include "worker/engine/cuda_step_plan.h"
#include "worker/engine/forward_backend.h"
#include "worker/engine/step_limits.h"
#include "worker/kv/device_kv_tables.h"

namespace rami::cuda {

// MakeCache's options: the page size, the memory plan's utilization and largest step, and an
// optional cap on the pool (tests and benchmarks that want a small or fixed pool).
struct CudaCacheOptions {
  int page_size = 16;
  double utilization = 0.9;  // of the device's total memory (vLLM's gpu_memory_utilization)
  engine::StepLimits limits;
  int64_t max_pages = 0;  // > 0: at most this many pages, whatever the plan allows
};

struct CudaModelOptions {
  kernels::DeviceDType dtype = kernels::DeviceDType::kBF16;  // kF32: the exactness mode
  int world_size = 1;
  // Decode-only steps of up to max_graph_batch tokens run as CUDA graphs per batch bucket
  // (worker/cuda/decode_graphs.h); false: every step is launched eagerly.
  bool cuda_graphs = true;
  int max_graph_batch = 256;
  // Chunks with a sample request get their token sampled on the device (DeviceSampler) instead
  // of returning their logits row.
  bool device_sampling = true;
};

class CudaModel : public engine::ForwardBackend {
 public:
  // `host`, this rank's fp32 shard of `shape`'s model, uploaded in options.dtype; the caller
  // may free it once Create returns (the backend keeps no host copy).
  static absl::StatusOr<std::unique_ptr<CudaModel>> Create(engine::ModelShape shape,
                                                           const checkpoint::ModelWeights& host,
                                                           const CudaModelOptions& options);
  // With weights already on the device (e.g. DeviceWeights::Allocate filled with random values by
  // rami-bench): `weights` must be complete for the shape's config, in options.dtype.
  static absl::StatusOr<std::unique_ptr<CudaModel>> Create(engine::ModelShape shape,
                                                           std::unique_ptr<DeviceWeights> weights,
                                                           const CudaModelOptions& options);
  ~CudaModel() override;
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  // The host bookkeeping cache (accounting only) over a device pool sized by the memory plan
  // (engine/device_memory_plan.h): first the largest step `limits` allows runs once on a
  // scratch cache, so every step buffer and the sampler's reach their largest size; then the
  // pool takes what `utilization` of the device's total memory leaves. Call once; pool_bytes()
  // and memory_plan() report the result.
  absl::StatusOr<std::unique_ptr<kv::KvCache>> MakeCache(const kv::CachePolicy& policy,
                                                         const CudaCacheOptions& options);
  int64_t pool_bytes() const { return pool_bytes_; }
  // The plan MakeCache made, one line (empty before).
  const std::string& memory_plan() const { return memory_plan_; }
  const engine::DecodeGraphStats& graph_stats() const { return graphs_.stats(); }
  int64_t weight_bytes() const { return weights_->bytes(); }
  // The compute stream every launch of a step goes on (NCCL's communicator uses it too).
  cudaStream_t stream() const { return stream_; }
  // Tensor parallelism (world_size > 1): this rank's NCCL communicator, created by the caller
  // on stream(); owned from here. Required before the first step of a world > 1.
  void set_device_collectives(std::unique_ptr<collectives::NcclCollectives> comm) {
    device_comm_ = std::move(comm);
  }

  const engine::ModelShape& shape() const override { return shape_; }
  absl::StatusOr<engine::ForwardResult> RunReserved(absl::Span<const engine::SequenceChunk> chunks,
                                                    kv::KvCache& cache,
                                                    collectives::Collectives& comm) const override;
  void CacheChanged(absl::Span<const kv::SeqId> ids) const override {
    if (host_ != nullptr) host_->CacheChanged(ids);
  }
  // The host side of the steps (tables, plans, commits) and its time per phase; null before
  // MakeCache.
  const engine::CudaStepHost* step_host() const { return host_.get(); }
  // `steps` greedy decode steps of `ids` back to back on the device (each holding its input
  // token in `tokens`; engine::CudaStepHost::RunDecodeSteps over this model): with `overlap`,
  // step N + 1 is reserved, synced and packed before N's results are taken. The Engine does not
  // use it yet: overlap stays off until tests/gpu/overlap_gpu_test.cc has passed on a GPU, and
  // gains nothing before the launch and the wait are split (docs/gpu.md, "Host cost per step").
  absl::Status RunDecodeSteps(
      absl::Span<const kv::SeqId> ids, std::vector<int32_t> tokens, int steps, bool overlap,
      kv::KvCache& cache, collectives::Collectives& comm,
      const std::function<void(int, const engine::ForwardResult&)>& on_step) const;

 private:
  // Scratch buffers of a step, each grown to the largest step seen.
  enum ScratchId {
    kResidual,    // [T, hidden]
    kDelta,       // [T, hidden]
    kNormed,      // [T, hidden]
    kQkv,         // [T, (Hq + 2 Hkv) · D]
    kQ,           // [T, Hq · D]
    kK,           // [T, Hkv · D]
    kV,           // [T, Hkv · D]
    kAttn,        // [T, Hq · D]
    kGateUp,      // [T, 2 I]
    kAct,         // [T, I]
    kAlpha,       // [L, T, Hkv] uint8
    kStep,        // the packed CudaStepPlan
    kTiles,       // [num_tiles] PrefillTile
    kPartialOut,  // [num_decode, Hq, splits, D] fp32
    kPartialLse,  // [num_decode, Hq, splits] fp32
    kSelected,    // [rows, hidden]
    kLogits,      // [rows, vocab_local]
    kGathered,    // [world, rows, vocab_local] (world > 1)
    kAlphaX,      // [T, hidden] DMS adapter input
    kShared,      // [T] fp32 per-layer decisions
    kOps,         // [copies] KvCopyOp
    // DeepSeek (cuda_model_mla.cc), H = local query heads:
    kMlaQa,         // [T, q_lora]
    kMlaQ,          // [T, H · qk_head_dim]: [q_nope | rotated q_rope] per head
    kMlaRows,       // [T, kv_lora + rope]: the cache rows [normed latent | rotated rope key]
    kMlaQLatent,    // [T, H, kv_lora + rope]: absorbed queries
    kMlaLatent,     // [T, H, kv_lora]: attention output in the latent space
    kMlaAttn,       // [T, H · v_head_dim]: up-projected values
    kMoeX,          // [T, hidden] fp32 router input (bf16 only)
    kMoeRows,       // [T] int32 0 … T − 1 (LogitsGatherCuda's row list; bf16 only)
    kMoeLogits,     // [T, num_experts] fp32
    kMoeIds,        // [T, top_k] int32
    kMoeWeights,    // [T, top_k] fp32
    kMoeShared,     // [T, hidden] the shared experts' output
    kMoeWorkspace,  // RunMoeExpertsCuda's workspace
    // Prompt scoring (cuda_model_score.cc), S = engine::kScoreSliceRows:
    kScoreSelected,  // [S, hidden]
    kScoreLogits,    // [S, vocab_local]
    kScoreGathered,  // [world, S, vocab_local] (world > 1)
    kScoreF32,       // [S, vocab] fp32
    kScoreIo,        // a slice's rows, tokens and targets in; target and top-n log-probs out
    kNumScratch,
  };
  // Device memory that grows to the largest step seen (freed after the stream drains).
  struct Scratch {
    void* ptr = nullptr;
    size_t bytes = 0;
  };

  // Device inputs and buffers of one step's forward pass (plan order, T tokens incl. padding).
  struct StepArgs {
    int num_tokens = 0, num_decode = 0, rows = 0;
    const int32_t* tokens = nullptr;        // [T]
    const int32_t* positions = nullptr;     // [T]
    const int32_t* token_stream = nullptr;  // [L, T]
    const int32_t* logit_tokens = nullptr;  // [rows]
    const kernels::PrefillTile* tiles = nullptr;
    int num_tiles = 0;
    kernels::DecodeSplitPlan splits;
    float* partial_out = nullptr;
    float* partial_lse = nullptr;
    kernels::KvCacheCudaView view;
    void *residual = nullptr, *dx = nullptr, *normed = nullptr, *qkv = nullptr, *q = nullptr,
         *k = nullptr, *v = nullptr, *attn = nullptr, *gate_up = nullptr, *act = nullptr,
         *selected = nullptr, *logits = nullptr;
    void* gathered = nullptr;      // world > 1: every rank's logits, [world, rows, vocab_local]
    uint8_t* alpha_all = nullptr;  // [L, T, Hkv] the step's DMS decisions
    void* alpha_x = nullptr;       // [T, hidden] the DMS adapter's normed input
    float* shared = nullptr;       // [T] per-layer decisions over the ranks
    bool write_decisions = false;  // the policy is dms: KvWrite records the decisions
    // DeepSeek's buffers (ScratchId kMla*/kMoe*); not in Pointers(): MLA steps are never
    // captured.
    struct Mla {
      void *q_a = nullptr, *q = nullptr, *rows = nullptr, *q_latent = nullptr, *latent = nullptr,
           *attn = nullptr, *shared_out = nullptr;
      float* router_x = nullptr;         // null in fp32 (normed is the router input)
      const int32_t* row_ids = nullptr;  // null in fp32
      float* router_logits = nullptr;
      int32_t* expert_ids = nullptr;    // device
      float* expert_weights = nullptr;  // device
      void* moe_workspace = nullptr;
      size_t moe_workspace_bytes = 0;
    } mla;
    // Every device pointer above (a captured graph is valid while they stay the same).
    std::vector<const void*> Pointers() const;
  };

  // Prompt scoring's slice buffers (scratch kScore*, always at their full size).
  struct ScoreBuffers {
    void* selected = nullptr;
    void* logits = nullptr;
    void* gathered = nullptr;  // world > 1
    float* f32 = nullptr;
    char* io = nullptr;
  };

  CudaModel(engine::ModelShape shape, const CudaModelOptions& options);
  // Checks what the kernels take and creates the stream, the GEMM and the RoPE table; weights_
  // is set by the caller.
  static absl::StatusOr<std::unique_ptr<CudaModel>> CreateWithoutWeights(
      engine::ModelShape shape, const CudaModelOptions& options);
  // The device side of a step (engine::StepDevice over this model, cuda_model.cc): table
  // deltas, slot copies, the plan's copy and the forward pass on stream_.
  class Device;
  // The forward pass of a planned step (CudaStepHost::Run calls it through Device), its results
  // and its decisions [L, T, Hkv] copied back. `comm`: the group's host collectives (the graph
  // steps' capture agreement).
  absl::StatusOr<engine::ForwardResult> Forward(absl::Span<const engine::SequenceChunk> chunks,
                                                const engine::CudaStepPlan& plan,
                                                const engine::CudaStepLayout& layout,
                                                const void* packed, std::vector<uint8_t>* decisions,
                                                collectives::Collectives& comm) const;
  // Pinned host memory for plan buffer `index` (engine::StepDevice::PlanBuffer).
  absl::StatusOr<void*> PlanBuffer(int index, size_t bytes) const;
  // The host pool's slot copies, launch i covering ops [bounds[i], bounds[i + 1]).
  absl::Status CopySlots(absl::Span<const kernels::KvCopyOp> ops,
                         absl::Span<const int32_t> bounds) const;
  // A step on `cache` through host_ (RunReserved's contract).
  absl::StatusOr<engine::ForwardResult> Step(absl::Span<const engine::SequenceChunk> chunks,
                                             kv::KvCache& cache,
                                             collectives::Collectives& comm) const;
  // Launches the forward pass, embedding to the (gathered) logits, on stream_: kernels, GEMMs
  // and NCCL collectives only, so that a decode step can be captured as a graph.
  absl::Status Enqueue(const StepArgs& a) const;
  // Sums a [count] tensor of the compute dtype over the ranks (no-op for a world of one).
  // out = RMSNorm(x [+ residual, then residual = that sum]) · weight over [T, cols] rows.
  absl::Status Norm(const void* x, void* residual, const void* weight, void* out, int rows,
                    int cols, float eps) const;
  // The layer's DMS decisions besides the borrowed neuron's (QkvPrepCuda): the adapter's, the
  // per-layer share; `heads` decisions per token.
  absl::Status EnqueueDecisions(const StepArgs& a, const DeviceLayerWeights& w, int layer,
                                int heads) const;
  // dx = attn · o_projᵀ (+ bias on rank 0), summed over the ranks.
  absl::Status EnqueueOutputProjection(const StepArgs& a, const void* attn,
                                       const DeviceLayerWeights& w, int width) const;
  absl::Status AllReduce(void* data, size_t count) const;
  absl::StatusOr<void*> Grow(Scratch& s, size_t bytes) const;
  // Prompt scoring (cuda_model_score.cc): the chunks' scored rows (score_top_n) of a.normed,
  // after Enqueue, into result->scored, kScoreSliceRows rows at a time (worker/engine/
  // token_scores.h); only the scores come back to the host. Waits for the stream.
  absl::Status Score(absl::Span<const engine::SequenceChunk> chunks,
                     const engine::CudaStepPlan& plan, const StepArgs& a,
                     engine::ForwardResult* result) const;
  absl::StatusOr<ScoreBuffers> GrowScoreBuffers() const;
  // K (and V) pools of `pages` pages of `page_size` rows, zeroed on the stream.
  absl::Status AllocatePools(int64_t pages, int page_size);
  void FreePools();
  // Runs the largest step `limits` allows on a scratch cache (freed after), so every step
  // buffer and the sampler's are at their largest size before the pool is sized.
  absl::Status RunLargestStep(int page_size, const kv::CachePolicy& policy,
                              const engine::StepLimits& limits);
  absl::Status Gemm(const void* x, const void* w, void* y, int m, int n, int k) const;
  // Any GemmParams (strides, batches) in the compute dtype.
  absl::Status GemmStrided(kernels::GemmParams p) const;

  // DeepSeek (cuda_model_mla.cc). The step's MLA/MoE buffers and its MLA split plan (every
  // token goes through MlaDecodeAttentionCuda, prefill included), before Enqueue.
  absl::Status PrepareMlaStep(const engine::CudaStepPlan& plan, StepArgs* a) const;
  // One DeepSeek layer: MLA attention block, then the dense MLP or the MoE
  // (worker/cpu/mla_layer.cc).
  absl::Status EnqueueMlaLayer(const StepArgs& a, int layer) const;
  // delta (a.dx) = routed experts + shared experts of `normed`, all-reduced (worker/cpu/moe.cc).
  // Synchronizes the host with the stream once (the routing's expert ids and weights).
  absl::Status EnqueueMoe(const StepArgs& a, const DeviceMoeWeights& w) const;
  // out = SwiGLU(normed · gate_upᵀ) · downᵀ over `inter` local columns (no all-reduce).
  absl::Status EnqueueSwigluMlp(const StepArgs& a, const void* gate_up, const void* down, int inter,
                                void* out) const;

  engine::ModelShape shape_;
  CudaModelOptions options_;
  // The CUDA ordinal current at Create: RunReserved and the destructor make it current again,
  // since the worker may step (and unload) on other threads than the one that loaded.
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  int num_sms_ = 0;
  std::unique_ptr<DeviceWeights> weights_;
  std::unique_ptr<kernels::CublasLtGemm> gemm_;
  float* inv_freq_ = nullptr;  // [head_dim / 2] fp32
  void* k_pool_ = nullptr;     // [num_pages, page_size, cache_row_] dtype
  void* v_pool_ = nullptr;     // the same, or null: MLA's cache is K-only
  int cache_row_ = 0;          // values per cached row: head_dim, or MLA's kv_lora_rank + rope
  int64_t pool_bytes_ = 0;
  std::string memory_plan_;
  int page_size_ = 0;
  // A step mutates device state and these mirrors; the Engine runs one step at a time.
  mutable std::unique_ptr<engine::CudaStepHost> host_;  // the host mirror, copy log, touched ids
  mutable std::unique_ptr<DeviceKvTablesGpu> tables_gpu_;
  mutable std::vector<Scratch> scratch_;
  // The steps' packed metadata on the host, one per plan buffer (StepDevice::kPlanBuffers).
  mutable void* pinned_[engine::StepDevice::kPlanBuffers] = {};
  mutable size_t pinned_bytes_[engine::StepDevice::kPlanBuffers] = {};
  std::unique_ptr<collectives::NcclCollectives> device_comm_;  // world > 1
  mutable DecodeGraphs graphs_;
  mutable std::unique_ptr<DeviceSampler> sampler_;
  // MoE: pinned host copies of a layer's expert ids and weights, and the event after their copy.
  mutable void* moe_pinned_ = nullptr;
  mutable size_t moe_pinned_bytes_ = 0;
  cudaEvent_t moe_event_ = nullptr;
};

}  // namespace rami::cuda
