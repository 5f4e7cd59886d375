// LoadShard: options → checkpoint → backend (CPU or CUDA) → cache → collectives → Engine.
#include "worker/engine/shard.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/status_macros.h"
#include "worker/checkpoint/checkpoint.h"
#include "worker/checkpoint/config_parser.h"
#include "worker/checkpoint/weights.h"
#include "worker/collectives/collectives.h"
#include "worker/cpu/model.h"
#include "worker/engine/model_shape.h"
#include "worker/kv/cache_policy.h"
#if defined(RAMI_HAVE_GLOO)
#include "worker/collectives/gloo_collectives.h"
#endif
#if defined(RAMI_HAVE_CUDA_BACKEND)
#include <cuda_runtime_api.h>

#include "worker/collectives/nccl_collectives.h"
#include "worker/cuda/cuda_model.h"
#include "worker/cuda/device_weights.h"
#endif

namespace rami::engine {

using checkpoint::Checkpoint;
using checkpoint::ModelConfig;
using checkpoint::ModelWeights;
using collectives::Collectives;
using collectives::RendezvousStore;
using kv::CachePolicy;
using kv::KvCache;

namespace {

absl::Status Invalid(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

// Memory the host can still give this process without swapping: MemAvailable of /proc/meminfo
// (Linux), else the free physical pages; -1 where neither is known.
int64_t HostAvailableBytes() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    int64_t kib = 0;
    if (line.rfind("MemAvailable:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(13), "kB")),
                         &kib)) {
      return kib * 1024;
    }
  }
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : -1;
}

// RssAnon of /proc/self/status in bytes, -1 where unavailable (not Linux).
int64_t HostAnonRssBytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    int64_t kib = 0;
    if (line.rfind("RssAnon:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(8), "kB")),
                         &kib)) {
      return kib * 1024;
    }
  }
  return -1;
}

// The config, this rank's fp32 weights and the shard's shape, from the checkpoint.
struct HostShard {
  ModelShape shape;
  ModelWeights weights;
};
absl::StatusOr<HostShard> ReadCheckpoint(const ShardOptions& o) {
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(o.model_dir));
  RAMI_ASSIGN_OR_RETURN(
      ModelConfig config,
      checkpoint::ParseModelConfig(checkpoint->config(), o.model_dir + "/config.json"));
  RAMI_ASSIGN_OR_RETURN(ModelWeights weights, LoadWeights(*checkpoint, config, o.shard));
  RAMI_ASSIGN_OR_RETURN(ModelShape shape, ModelShape::Make(std::move(config), o.shard));
  return HostShard{std::move(shape), std::move(weights)};
}

absl::StatusOr<CachePolicy> PolicyOf(const ShardOptions& o, const ModelShape& shape) {
  if (o.cache_policy.empty()) return shape.DefaultCachePolicy();
  return CachePolicy::Parse(o.cache_policy, shape.config().dms.window_size);
}

// The host collectives through which every backend's Engine agrees on each step (and the CPU
// backend moves its tensors): nothing to join for one rank; else a Gloo mesh found through
// `store`, bounded by the collective timeout.
absl::StatusOr<std::unique_ptr<Collectives>> JoinHostCollectives(const ShardOptions& o,
                                                                 RendezvousStore& store) {
  if (o.shard.world_size == 1) return std::make_unique<collectives::SingleRankCollectives>();
#if defined(RAMI_HAVE_GLOO)
  RAMI_ASSIGN_OR_RETURN(
      std::unique_ptr<collectives::GlooCollectives> gloo,
      collectives::GlooCollectives::Create(o.shard.rank, o.shard.world_size, &store, o.group_id,
                                           o.bind_host, o.collective_timeout));
  return gloo;
#else
  (void)store;
  return absl::UnimplementedError(
      "world_size > 1: this build has no Gloo (the host collectives of a group)");
#endif
}

ShardInfo Describe(const ModelShape& shape, const KvCache& cache, const CachePolicy& policy,
                   ComputeDType dtype, int64_t pool_bytes) {
  const ModelConfig& c = shape.config();
  return {.num_pages = cache.pool().num_pages(),
          .page_size = cache.pool().page_size(),
          .kv_cache_bytes = pool_bytes,
          .dtype = dtype,
          .vocab_size = c.vocab_size,
          .num_layers = c.num_layers,
          .num_kv_heads = shape.dims().kv_heads,
          .cache_policy = policy.ToString(),
          .dms_window = policy.evicts() ? policy.window : 0,
          .eos_token_ids = c.eos_token_ids,
          .memory_plan = {},  // the CUDA load fills these two
          .host_anon_rss_bytes = -1};
}

absl::StatusOr<LoadedShard> LoadCpu(const ShardOptions& o, RendezvousStore& store) {
  RAMI_ASSIGN_OR_RETURN(HostShard host, ReadCheckpoint(o));
  RAMI_ASSIGN_OR_RETURN(const CachePolicy policy, PolicyOf(o, host.shape));
  // The CPU backend's page: fp32 K and V rows (a K-only latent row for MLA).
  const int64_t page_bytes = host.shape.KvPageBytes(o.page_size, sizeof(float));
  const int64_t num_pages = o.kv_cache_bytes / page_bytes;
  if (num_pages < 1 || num_pages > INT32_MAX) {
    return Invalid("kv_cache_bytes", absl::StrCat("must hold 1…2^31 pages of ", page_bytes,
                                                  " bytes, found ", o.kv_cache_bytes));
  }
  // The pool is allocated whole, now: one the host cannot hold is refused by name rather than
  // left to the allocator (bad_alloc, or the OOM killer after gigabytes were touched).
  const int64_t available = HostAvailableBytes();
  if (available >= 0 && num_pages * page_bytes > available) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "kv_cache_bytes: a pool of ", num_pages * page_bytes, " bytes does not fit in the ",
        available, " bytes of host memory available (MemAvailable, after the weights)"));
  }
  RAMI_ASSIGN_OR_RETURN(
      std::unique_ptr<KvCache> cache,
      host.shape.MakeCache({.page_size = o.page_size, .num_pages = static_cast<int>(num_pages)},
                           policy));
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Collectives> comm, JoinHostCollectives(o, store));
  auto model = std::make_unique<cpu::Model>(std::move(host.shape), std::move(host.weights));
  ShardInfo info =
      Describe(model->shape(), *cache, policy, ComputeDType::kFp32, num_pages * page_bytes);
  return LoadedShard{
      std::make_unique<Engine>(std::move(model), std::move(cache), std::move(comm), o.limits),
      std::move(info)};
}

#if defined(RAMI_HAVE_CUDA_BACKEND)
// The CUDA backend: weights on the device in the resolved dtype (read and uploaded one layer at
// a time); under tensor parallelism the host collectives (the Engine's agreement) plus an
// NCCL communicator on the model's stream for its device tensors; then the KV pool from the
// memory plan.
absl::StatusOr<LoadedShard> LoadCuda(const ShardOptions& o, ComputeDType dtype,
                                     RendezvousStore& store) {
  if (const cudaError_t e = cudaSetDevice(o.device.index); e != cudaSuccess) {
    return Invalid("device", absl::StrCat(DeviceName(o.device), ": ", cudaGetErrorString(e)));
  }
  // Weights straight from the checkpoint to the device, one layer at a time: the host never
  // holds the whole model in fp32, and keeps nothing after the upload.
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::Open(o.model_dir));
  RAMI_ASSIGN_OR_RETURN(
      ModelConfig config,
      checkpoint::ParseModelConfig(checkpoint->config(), o.model_dir + "/config.json"));
  RAMI_ASSIGN_OR_RETURN(ModelShape shape, ModelShape::Make(config, o.shard));
  const kernels::DeviceDType device_dtype =
      dtype == ComputeDType::kFp32 ? kernels::DeviceDType::kF32 : kernels::DeviceDType::kBF16;
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<cuda::DeviceWeights> weights,
                        cuda::DeviceWeights::Load(*checkpoint, config, o.shard, device_dtype));
  checkpoint.reset();  // unmaps the files
  RAMI_ASSIGN_OR_RETURN(
      std::unique_ptr<cuda::CudaModel> backend,
      cuda::CudaModel::Create(
          std::move(shape), std::move(weights),
          {.dtype = device_dtype, .world_size = o.shard.world_size, .cuda_graphs = o.cuda_graphs}));
  RAMI_ASSIGN_OR_RETURN(const CachePolicy policy, PolicyOf(o, backend->shape()));
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Collectives> comm, JoinHostCollectives(o, store));
  if (o.shard.world_size > 1) {
    // Joined before the pool is sized, so NCCL's own buffers come out of the memory first.
    // Its unique id goes through the same store as Gloo's addresses, under its own prefix.
    RAMI_ASSIGN_OR_RETURN(
        std::unique_ptr<collectives::NcclCollectives> nccl,
        collectives::NcclCollectives::Create({.rank = o.shard.rank,
                                              .world_size = o.shard.world_size,
                                              .device = o.device.index,
                                              .group_id = absl::StrCat(o.group_id, "/device"),
                                              .stream = backend->stream(),
                                              .timeout = o.collective_timeout},
                                             &store));
    backend->set_device_collectives(std::move(nccl));
  }
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                        backend->MakeCache(policy, {.page_size = o.page_size,
                                                    .utilization = o.gpu_memory_utilization,
                                                    .limits = o.limits}));
  ShardInfo info = Describe(backend->shape(), *cache, policy, dtype, backend->pool_bytes());
  info.memory_plan = backend->memory_plan();
  return LoadedShard{
      std::make_unique<Engine>(std::move(backend), std::move(cache), std::move(comm), o.limits),
      std::move(info)};
}
#endif

}  // namespace

absl::Status ShardOptions::Validate() const {
  if (model_dir.empty()) return Invalid("model_dir", "required");
  if (shard.world_size < 1 || shard.world_size > 64) {
    return Invalid("world_size", absl::StrCat("expected 1…64, found ", shard.world_size));
  }
  if (shard.rank < 0 || shard.rank >= shard.world_size) {
    return Invalid("rank",
                   absl::StrCat("expected 0…", shard.world_size - 1, ", found ", shard.rank));
  }
  RAMI_RETURN_IF_ERROR(ResolveComputeDType(device, dtype).status());
  if (page_size < 1 || page_size > 4096) {
    return Invalid("page_size", absl::StrCat("expected 1…4096, found ", page_size));
  }
  if (!device.is_cuda() && kv_cache_bytes <= 0) {
    return Invalid("kv_cache_bytes",
                   absl::StrCat("expected > 0 on the CPU device, found ", kv_cache_bytes));
  }
  if (!(gpu_memory_utilization > 0 && gpu_memory_utilization <= 1)) {
    return Invalid("gpu_memory_utilization",
                   absl::StrCat("expected (0, 1], found ", gpu_memory_utilization));
  }
  if (limits.max_step_tokens < 1 || limits.max_step_tokens > (1 << 20)) {
    return Invalid("max_step_tokens",
                   absl::StrCat("expected 1…1048576, found ", limits.max_step_tokens));
  }
  if (limits.max_step_sequences < 1 || limits.max_step_sequences > limits.max_step_tokens) {
    return Invalid("max_step_sequences",
                   absl::StrCat("expected 1…max_step_tokens (", limits.max_step_tokens, "), found ",
                                limits.max_step_sequences));
  }
  if (!(collective_timeout > absl::ZeroDuration() && collective_timeout <= absl::Hours(1))) {
    return Invalid("collective_timeout", absl::StrCat("expected (0, 3600] s, found ",
                                                      absl::FormatDuration(collective_timeout)));
  }
  if (shard.world_size > 1 && group_id.empty()) {
    return Invalid("group_id", "required when world_size > 1");
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadedShard> LoadShard(const ShardOptions& options, RendezvousStore& store) {
  RAMI_RETURN_IF_ERROR(options.Validate());
  RAMI_ASSIGN_OR_RETURN(const ComputeDType dtype,
                        ResolveComputeDType(options.device, options.dtype));
  auto measured = [](absl::StatusOr<LoadedShard> shard) {
    if (shard.ok()) shard->info.host_anon_rss_bytes = HostAnonRssBytes();
    return shard;
  };
  switch (options.device.kind) {
    case DeviceKind::kCpu:
      return measured(LoadCpu(options, store));
    case DeviceKind::kCuda:
#if defined(RAMI_HAVE_CUDA_BACKEND)
      return measured(LoadCuda(options, dtype, store));
#else
      (void)dtype;
      return absl::UnimplementedError(
          absl::StrCat("device: \"", DeviceName(options.device),
                       "\": this build has no CUDA backend (device: cpu)"));
#endif
  }
  return absl::InternalError("LoadShard: unknown device kind");
}

}  // namespace rami::engine
