// CudaModel's creation and device resources: checks of what the backend supports, the stream,
// the weights' upload, the rope table, the KV page pool sized from free memory (K and V, or
// MLA's K-only latent rows), the scratch buffers and the GEMM entry points; see cuda_model.h.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/moe.h"
#include "worker/cuda/cuda_model.h"
#include "worker/cuda/cuda_status.h"
#include "worker/engine/device_memory_plan.h"

namespace rami::cuda {

using checkpoint::ModelWeights;

using checkpoint::MlaConfig;
using checkpoint::ModelConfig;
using checkpoint::MoeConfig;
using checkpoint::MoeTopk;
using checkpoint::ShardDims;
using engine::RopeTable;
using engine::SampleRequest;
using engine::SequenceChunk;
using kv::CachePolicy;
using kv::KvCache;

namespace {

// Device memory kept free for the decode steps' CUDA graphs (up to ~40 buckets times the
// decode-split variants a batch meets): an estimate until measured on a GPU (docs/gpu.md).
constexpr int64_t kGraphReserveBytes = int64_t{512} << 20;

// What the DeepSeek path's kernels accept (kernels/cuda/kv_update.h, moe.h), checked once here
// so that an unsupported checkpoint fails at load with a message naming the value.
absl::Status CheckDeepseekSupported(const ModelConfig& c, const RopeTable& rope,
                                    kernels::DeviceDType dtype) {
  const MlaConfig& m = c.mla;
  const int64_t row_bytes = int64_t{m.latent_row()} * kernels::DeviceDTypeSize(dtype);
  if (row_bytes % 16 != 0) {  // KvWriteCuda/KvCopyCuda move rows as 16-byte words
    return absl::UnimplementedError(absl::StrCat(
        "CUDA backend: MLA cache rows of ", row_bytes, " bytes (kv_lora_rank ", m.kv_lora_rank,
        " + qk_rope_head_dim ", m.qk_rope_head_dim, "), not a multiple of 16"));
  }
  if (2 * static_cast<int64_t>(rope.inv_freq.size()) != m.qk_rope_head_dim) {
    return absl::InternalError(absl::StrCat("CUDA backend: a RoPE table of ", rope.inv_freq.size(),
                                            " frequencies for ", m.qk_rope_head_dim, " rope dims"));
  }
  if (!c.moe.enabled) return absl::OkStatus();
  const MoeConfig& e = c.moe;
  if (e.num_experts > kernels::kMoeMaxExperts) {
    return absl::UnimplementedError(absl::StrCat("CUDA backend: n_routed_experts ", e.num_experts,
                                                 " > ", kernels::kMoeMaxExperts));
  }
  if (e.num_groups < 1 || e.num_groups > 32 || e.num_experts % e.num_groups != 0 ||
      e.topk_groups < 1 || e.topk_groups > e.num_groups || e.experts_per_token < 1 ||
      e.experts_per_token > e.num_experts ||
      (e.topk == MoeTopk::kNoauxTc && e.num_experts / e.num_groups < 2)) {
    return absl::UnimplementedError(absl::StrCat(
        "CUDA backend: MoE routing with n_routed_experts ", e.num_experts, ", n_group ",
        e.num_groups, ", topk_group ", e.topk_groups, ", num_experts_per_tok ", e.experts_per_token,
        " (MoeRoutingCuda: n_group <= 32 dividing the experts, groups of >= 2 "
        "experts for noaux_tc)"));
  }
  return absl::OkStatus();
}

}  // namespace

CudaModel::CudaModel(engine::ModelShape shape, const CudaModelOptions& options)
    : shape_(std::move(shape)), options_(options) {}

CudaModel::~CudaModel() {
  cudaSetDevice(device_);  // the destroying thread may not have it current
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  graphs_.Clear();
  sampler_.reset();
  device_comm_.reset();  // its collectives were enqueued on stream_
  tables_gpu_.reset();   // frees on stream_
  for (Scratch& s : scratch_) cudaFree(s.ptr);
  cudaFree(inv_freq_);
  cudaFree(v_pool_);  // null for MLA
  cudaFree(k_pool_);
  for (void* pinned : pinned_) {
    if (pinned != nullptr) cudaFreeHost(pinned);
  }
  if (moe_pinned_ != nullptr) cudaFreeHost(moe_pinned_);
  if (moe_event_ != nullptr) cudaEventDestroy(moe_event_);
  gemm_.reset();
  weights_.reset();
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

absl::StatusOr<std::unique_ptr<CudaModel>> CudaModel::CreateWithoutWeights(
    engine::ModelShape shape, const CudaModelOptions& options) {
  const ModelConfig& c = shape.config();
  if (options.world_size != shape.shard().world_size) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA backend: a shard of a world of ",
                                                   shape.shard().world_size, " in a world of ",
                                                   options.world_size));
  }
  if (options.max_graph_batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA backend: max_graph_batch ", options.max_graph_batch, " < 1"));
  }
  if (c.mla.enabled) {
    // DeepSeek: MlaDecodeAttentionCuda takes any row width and head count; no GQA limits.
    RAMI_RETURN_IF_ERROR(CheckDeepseekSupported(c, shape.rope(), options.dtype));
  } else {
    if (c.head_dim != 64 && c.head_dim != 128) {
      return absl::UnimplementedError(absl::StrCat("CUDA backend: head_dim ", c.head_dim));
    }
    const ShardDims& d = shape.dims();
    if (d.q_heads % d.kv_heads != 0 || d.q_heads / d.kv_heads > kernels::kAttentionMaxGroup) {
      return absl::UnimplementedError(
          absl::StrCat("CUDA backend: GQA group ", d.q_heads, "/", d.kv_heads));
    }
  }
  std::unique_ptr<CudaModel> m(new CudaModel(std::move(shape), options));
  RAMI_CUDA_OK(cudaGetDevice(&m->device_));
  RAMI_CUDA_OK(cudaStreamCreateWithFlags(&m->stream_, cudaStreamNonBlocking));
  RAMI_CUDA_OK(cudaDeviceGetAttribute(&m->num_sms_, cudaDevAttrMultiProcessorCount, m->device_));
  if (c.moe.enabled) {
    RAMI_CUDA_OK(cudaEventCreateWithFlags(&m->moe_event_, cudaEventDisableTiming));
  }
  m->sampler_ = std::make_unique<DeviceSampler>(m->stream_);
  RAMI_ASSIGN_OR_RETURN(m->gemm_, kernels::CublasLtGemm::Create());
  const std::vector<float>& inv_freq = m->shape_.rope().inv_freq;
  void* inv_freq_dev = nullptr;
  RAMI_CUDA_OK(cudaMalloc(&inv_freq_dev, sizeof(float) * inv_freq.size()));
  m->inv_freq_ = static_cast<float*>(inv_freq_dev);
  RAMI_CUDA_OK(cudaMemcpy(m->inv_freq_, inv_freq.data(), sizeof(float) * inv_freq.size(),
                          cudaMemcpyHostToDevice));
  // A pageable cudaMemcpy may return before its DMA lands, on the legacy stream, which the
  // non-blocking stream_ does not wait for: the RoPE table (and the caller's weights) must be
  // in place before the first step.
  RAMI_CUDA_OK(cudaDeviceSynchronize());
  m->scratch_.resize(kNumScratch);
  return m;
}

absl::StatusOr<std::unique_ptr<CudaModel>> CudaModel::Create(engine::ModelShape shape,
                                                             const ModelWeights& host,
                                                             const CudaModelOptions& options) {
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<CudaModel> m,
                        CreateWithoutWeights(std::move(shape), options));
  RAMI_ASSIGN_OR_RETURN(m->weights_, DeviceWeights::Upload(m->config(), host, options.dtype));
  RAMI_CUDA_OK(cudaDeviceSynchronize());  // the pageable uploads have landed
  return m;
}

absl::StatusOr<std::unique_ptr<CudaModel>> CudaModel::Create(engine::ModelShape shape,
                                                             std::unique_ptr<DeviceWeights> weights,
                                                             const CudaModelOptions& options) {
  if (weights == nullptr) return absl::InvalidArgumentError("CUDA backend: Create without weights");
  if (weights->dtype() != options.dtype) {
    return absl::InvalidArgumentError("CUDA backend: device weights of another dtype");
  }
  RAMI_RETURN_IF_ERROR(weights->CheckComplete(shape.config()));
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<CudaModel> m,
                        CreateWithoutWeights(std::move(shape), options));
  m->weights_ = std::move(weights);
  return m;
}

absl::Status CudaModel::AllocatePools(int64_t pages, int page_size) {
  const ModelConfig& c = config();
  // MLA: one K-only latent row per (sequence, layer) token — [normed latent | rope key], one
  // stream per (sequence, layer) (1 KV head), replicated on every rank; no V pool.
  const bool k_only = c.mla.enabled;
  cache_row_ = k_only ? c.mla.latent_row() : c.head_dim;
  page_size_ = page_size;
  const size_t half = static_cast<size_t>(pages) * page_size * cache_row_ *
                      kernels::DeviceDTypeSize(options_.dtype);
  // Zeroed on stream_: a cudaMemset runs on the legacy stream, asynchronously to the host and
  // unordered with the non-blocking stream_, so it could still be running over the first step's
  // K/V writes.
  RAMI_CUDA_OK(cudaMalloc(&k_pool_, half));
  RAMI_CUDA_OK(cudaMemsetAsync(k_pool_, 0, half, stream_));
  if (!k_only) {  // MLA: no V pool (the kernels then write and copy K only)
    RAMI_CUDA_OK(cudaMalloc(&v_pool_, half));
    RAMI_CUDA_OK(cudaMemsetAsync(v_pool_, 0, half, stream_));
  }
  pool_bytes_ = static_cast<int64_t>((k_only ? 1 : 2) * half);
  return absl::OkStatus();
}

void CudaModel::FreePools() {
  cudaStreamSynchronize(stream_);
  cudaFree(k_pool_);
  cudaFree(v_pool_);
  k_pool_ = v_pool_ = nullptr;
  pool_bytes_ = 0;
}

absl::Status CudaModel::RunLargestStep(int page_size, const CachePolicy& policy,
                                       const engine::StepLimits& limits) {
  // One step with max_step_tokens tokens over max_step_sequences sequences: all but one decode
  // a single token (max decode rows, splits and logits rows), the last prefills the rest (max
  // activations and prefill tiles); every chunk samples with temperature 1 and 20 log-probs
  // (the sampler's largest workspace). Then prompt scoring's buffers (fixed size).
  const int sequences = std::max(1, std::min(limits.max_step_sequences, limits.max_step_tokens));
  const int prefill = limits.max_step_tokens - (sequences - 1);
  const int64_t streams = static_cast<int64_t>(config().num_layers) * shape_.dims().kv_heads;
  const int64_t pages = streams * ((sequences - 1) * 2 + (prefill + page_size - 1) / page_size + 2);
  RAMI_RETURN_IF_ERROR(AllocatePools(pages, page_size));
  absl::Status status = [&]() -> absl::Status {
    RAMI_ASSIGN_OR_RETURN(
        std::unique_ptr<KvCache> cache,
        shape_.MakeCache({.page_size = page_size,
                          .num_pages = static_cast<int>(std::min<int64_t>(pages, INT32_MAX)),
                          .allocate_storage = false},
                         policy));
    host_ = std::make_unique<engine::CudaStepHost>(config().num_layers, shape_.dims().kv_heads,
                                                   page_size, policy);
    host_->Attach(*cache);
    tables_gpu_ = std::make_unique<DeviceKvTablesGpu>(stream_);
    std::vector<SequenceChunk> chunks;
    for (int i = 0; i < sequences; ++i) {
      RAMI_RETURN_IF_ERROR(cache->AddSequence(i));
      SequenceChunk chunk{.seq_id = i,
                          .tokens = std::vector<int32_t>(i + 1 < sequences ? 1 : prefill, 0)};
      chunk.sample =
          SampleRequest{.params = {.temperature = 1.0f, .logprobs = SamplingParams::kMaxLogprobs}};
      chunks.push_back(std::move(chunk));
    }
    RAMI_RETURN_IF_ERROR(shape_.Reserve(chunks, *cache));
    collectives::SingleRankCollectives no_agreement;  // an eager step: no graph agreement
    RAMI_RETURN_IF_ERROR(Step(chunks, *cache, no_agreement).status());
    // Prompt scoring's slice buffers have one size, whatever the step: reserved here too.
    return GrowScoreBuffers().status();
  }();
  // The scratch cache goes; the step buffers and the sampler keep their sizes.
  RAMI_CUDA_OK(cudaStreamSynchronize(stream_));
  tables_gpu_.reset();
  host_.reset();
  FreePools();
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("CUDA backend: the largest step (",
                                                    limits.max_step_tokens, " tokens, ", sequences,
                                                    " sequences) failed: ", status.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KvCache>> CudaModel::MakeCache(const CachePolicy& policy,
                                                              const CudaCacheOptions& options) {
  const int page_size = options.page_size;
  if (host_ != nullptr || k_pool_ != nullptr) {
    return absl::FailedPreconditionError("CUDA backend: one cache only");
  }
  const ModelConfig& c = config();
  if (page_size < 1 || options.limits.max_step_tokens < 1 ||
      options.limits.max_step_sequences < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CUDA backend: page size ", page_size, ", max_step_tokens ", options.limits.max_step_tokens,
        ", max_step_sequences ", options.limits.max_step_sequences));
  }
  RAMI_RETURN_IF_ERROR(RunLargestStep(page_size, policy, options.limits));

  size_t free_bytes = 0, total_bytes = 0;
  RAMI_CUDA_OK(cudaMemGetInfo(&free_bytes, &total_bytes));
  int64_t reserved = static_cast<int64_t>(sampler_->bytes());
  for (const Scratch& s : scratch_) reserved += static_cast<int64_t>(s.bytes);
  const int64_t row = int64_t{c.mla.enabled ? c.mla.latent_row() : c.head_dim} *
                      static_cast<int64_t>(kernels::DeviceDTypeSize(options_.dtype));
  const engine::DeviceMemoryInputs in{
      .total_bytes = static_cast<int64_t>(total_bytes),
      .free_bytes = static_cast<int64_t>(free_bytes),
      .weight_bytes = weights_->bytes(),
      .reserved_bytes = reserved,
      .utilization = options.utilization,
      // Decode graphs per (bucket, splits): an estimate of their device memory, kept free.
      .graph_bytes = options_.cuda_graphs && !c.mla.enabled ? kGraphReserveBytes : 0,
      .page_bytes = (c.mla.enabled ? 1 : 2) * row * page_size,
      // Page tables grow with the pool: 4-byte entries with 2x region slack and 2x growth,
      // and window flags (1 byte a slot) with the same slack.
      .table_bytes_per_page = 16 + (policy.evicts() ? 4 * int64_t{page_size} : 0)};
  RAMI_ASSIGN_OR_RETURN(const engine::DeviceMemoryPlan plan, engine::PlanDeviceMemory(in));
  int64_t pages = std::min<int64_t>(plan.pages, INT32_MAX / page_size);
  if (options.max_pages > 0) pages = std::min(pages, options.max_pages);
  RAMI_ASSIGN_OR_RETURN(
      std::unique_ptr<KvCache> cache,
      shape_.MakeCache(
          {.page_size = page_size, .num_pages = static_cast<int>(pages), .allocate_storage = false},
          policy));
  if (cache->num_kv_heads() != shape_.dims().kv_heads) {  // the device tables' streams
    return absl::InternalError(absl::StrCat("CUDA backend: a host cache of ", cache->num_kv_heads(),
                                            " KV heads for ", shape_.dims().kv_heads,
                                            " device KV heads"));
  }
  RAMI_RETURN_IF_ERROR(AllocatePools(pages, page_size));
  memory_plan_ = plan.ToString(in);
  host_ = std::make_unique<engine::CudaStepHost>(c.num_layers, shape_.dims().kv_heads, page_size,
                                                 policy);
  host_->Attach(*cache);
  tables_gpu_ = std::make_unique<DeviceKvTablesGpu>(stream_);
  return cache;
}

absl::StatusOr<void*> CudaModel::Grow(Scratch& s, size_t bytes) const {
  if (bytes <= s.bytes && s.ptr != nullptr) return s.ptr;
  RAMI_CUDA_OK(cudaStreamSynchronize(stream_));  // the old buffer may still be read
  const size_t capacity = std::max<size_t>({bytes, 2 * s.bytes, 256});
  cudaFree(s.ptr);
  s = {};
  RAMI_CUDA_OK(cudaMalloc(&s.ptr, capacity));
  s.bytes = capacity;
  return s.ptr;
}

absl::Status CudaModel::Gemm(const void* x, const void* w, void* y, int m, int n, int k) const {
  return GemmStrided({.x = x, .w = w, .y = y, .m = m, .n = n, .k = k});
}

absl::Status CudaModel::GemmStrided(kernels::GemmParams p) const {
  p.dtype = options_.dtype == kernels::DeviceDType::kF32 ? kernels::GemmDtype::kF32
                                                         : kernels::GemmDtype::kBf16;
  return gemm_->Run(p, stream_);
}

}  // namespace rami::cuda
