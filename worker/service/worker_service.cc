// The Worker service: validation of LoadShard, the Step stream loop, stats, health, shutdown
// and the rendezvous store.
#include "worker/service/worker_service.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "proto/status_conversion.h"
#include "worker/collectives/gloo_collectives.h"
#include "worker/cpu/model.h"
#include "worker/service/grpc_rendezvous_store.h"
#include "worker/service/plan_proto.h"
#ifdef RAMI_WITH_CUDA_BACKEND
#include <cuda_runtime_api.h>

#include "worker/collectives/nccl_collectives.h"
#include "worker/cuda/cuda_model.h"
#endif

namespace rami::service {

using collectives::Collectives;
using collectives::GlooCollectives;
using collectives::NcclCollectives;
using collectives::SingleRankCollectives;
using cpu::Model;
using engine::CacheReport;
using engine::Engine;
using engine::EngineStats;
using kv::CachePolicy;
using kv::KvCache;

namespace {

namespace v1 = worker::v1;

absl::Status Invalid(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat("LoadShard: ", field, ": ", message));
}

// LoadShard's scalar fields, validated, with their defaults applied.
struct ShardOptions {
  int cuda_device = -1;  // -1: the CPU backend
  std::string dtype;     // "fp32" or "bf16" (CUDA only)
  int page_size = 16;
  absl::Duration collective_timeout;
};

absl::StatusOr<ShardOptions> ValidateRequest(const v1::LoadShardRequest& r) {
  ShardOptions o;
  if (r.model_dir().empty()) return Invalid("model_dir", "required");
  if (r.world_size() < 1 || r.world_size() > 64) {
    return Invalid("world_size", absl::StrCat("expected 1…64, found ", r.world_size()));
  }
  if (r.rank() < 0 || r.rank() >= r.world_size()) {
    return Invalid("rank", absl::StrCat("expected 0…", r.world_size() - 1, ", found ", r.rank()));
  }
  // device: "cpu" (or empty), or "cuda:<n>" — the CUDA backend when this worker has it.
  if (!r.device().empty() && r.device() != "cpu") {
    if (!absl::StartsWith(r.device(), "cuda:") ||
        !absl::SimpleAtoi(r.device().substr(5), &o.cuda_device) || o.cuda_device < 0) {
      return Invalid("device",
                     absl::StrCat("expected \"cpu\" or \"cuda:<n>\", found \"", r.device(), "\""));
    }
  }
  // dtype: "" = the backend's default; CUDA computes in bf16 or fp32, the CPU in fp32 only.
  const bool cuda = o.cuda_device >= 0;
  o.dtype = !r.dtype().empty() ? r.dtype() : cuda ? "bf16" : "fp32";
  if (cuda && o.dtype != "bf16" && o.dtype != "fp32") {
    return Invalid("dtype", absl::StrCat("expected \"\", \"bf16\" or \"fp32\" on device \"",
                                         r.device(), "\", found \"", r.dtype(), "\""));
  }
  if (!cuda && o.dtype != "fp32") {
    return Invalid("dtype", absl::StrCat("expected \"\" or \"fp32\" on the CPU device, found \"",
                                         r.dtype(), "\""));
  }
#ifndef RAMI_WITH_CUDA_BACKEND
  if (cuda) {
    return absl::UnimplementedError(
        absl::StrCat("LoadShard: device: \"", r.device(),
                     "\": this worker was built without CUDA (device: cpu)"));
  }
#endif
  if (!(r.gpu_memory_fraction() >= 0 && r.gpu_memory_fraction() <= 1)) {
    return Invalid("gpu_memory_fraction",
                   absl::StrCat("expected [0, 1] (0: 0.9), found ", r.gpu_memory_fraction()));
  }
  o.page_size = r.page_size() == 0 ? 16 : r.page_size();
  if (o.page_size < 1 || o.page_size > 4096) {
    return Invalid("page_size", absl::StrCat("expected 1…4096, found ", o.page_size));
  }
  const double timeout_s =
      r.collective_timeout_seconds() == 0 ? 30.0 : r.collective_timeout_seconds();
  if (!(timeout_s > 0 && timeout_s <= 3600)) {
    return Invalid("collective_timeout_seconds",
                   absl::StrCat("expected (0, 3600], found ", timeout_s));
  }
  o.collective_timeout = absl::Seconds(timeout_s);
  return o;
}

// The group's host collectives, through which every backend's Engine agrees on each step (and
// the CPU backend moves its tensors): nothing to join for one rank; else a Gloo mesh found
// through the rendezvous store that rank 0's worker serves, bounded by the collective timeout.
absl::StatusOr<std::unique_ptr<Collectives>> JoinHostCollectives(const v1::LoadShardRequest& r,
                                                                 absl::Duration timeout) {
  if (r.world_size() == 1) return std::make_unique<SingleRankCollectives>();
  const v1::Rendezvous& rv = r.rendezvous();
  if (rv.store_address().empty()) return Invalid("rendezvous.store_address", "required");
  if (rv.group_id().empty()) return Invalid("rendezvous.group_id", "required");
  GrpcRendezvousStore store(rv.store_address());
  RAMI_ASSIGN_OR_RETURN(
      std::unique_ptr<GlooCollectives> gloo,
      GlooCollectives::Create(r.rank(), r.world_size(), &store, rv.group_id(),
                              rv.bind_host().empty() ? "127.0.0.1" : rv.bind_host(), timeout));
  return gloo;
}

// The response's fields that describe the model and the policy (pages are the backend's).
void DescribeShard(const engine::ModelShape& model, const CachePolicy& policy,
                   const ShardOptions& o, v1::LoadShardResponse* response) {
  response->set_page_size(o.page_size);
  response->set_dtype(o.dtype);
  response->set_vocab_size(model.config().vocab_size);
  response->set_num_layers(model.config().num_layers);
  response->set_num_kv_heads(model.dims().kv_heads);
  response->set_cache_policy(policy.ToString());
  response->set_dms_window(policy.evicts() ? policy.window : 0);
  for (int id : model.config().eos_token_ids) response->add_eos_token_ids(id);
}

#ifdef RAMI_WITH_CUDA_BACKEND
// The CUDA backend: weights on the device in the request's dtype; under tensor parallelism the
// host collectives (the Engine's agreement) plus an NCCL communicator on the model's stream for
// its device tensors; then the KV pool from the free memory left.
absl::StatusOr<std::unique_ptr<Engine>> LoadCuda(const v1::LoadShardRequest& r,
                                                 const ShardOptions& o,
                                                 std::unique_ptr<Model> model,
                                                 const CachePolicy& policy,
                                                 v1::LoadShardResponse* response) {
  if (const cudaError_t e = cudaSetDevice(o.cuda_device); e != cudaSuccess) {
    return Invalid("device", absl::StrCat(r.device(), ": ", cudaGetErrorString(e)));
  }
  const kernels::DeviceDType dtype =
      o.dtype == "fp32" ? kernels::DeviceDType::kF32 : kernels::DeviceDType::kBF16;
  RAMI_ASSIGN_OR_RETURN(
      std::unique_ptr<cuda::CudaModel> backend,
      cuda::CudaModel::Create(
          model->shape(), model->weights(),
          {.dtype = dtype, .world_size = r.world_size(), .cuda_graphs = !r.enforce_eager()}));
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Collectives> comm,
                        JoinHostCollectives(r, o.collective_timeout));
  if (r.world_size() > 1) {
    // Joined before the pool is sized, so NCCL's own buffers come out of the memory first.
    // Its unique id goes through the same store as Gloo's addresses, under its own prefix.
    GrpcRendezvousStore store(r.rendezvous().store_address());
    RAMI_ASSIGN_OR_RETURN(
        std::unique_ptr<NcclCollectives> nccl,
        NcclCollectives::Create({.rank = r.rank(),
                                 .world_size = r.world_size(),
                                 .device = o.cuda_device,
                                 .group_id = absl::StrCat(r.rendezvous().group_id(), "/device"),
                                 .stream = backend->stream(),
                                 .timeout = o.collective_timeout},
                                &store));
    backend->set_device_collectives(std::move(nccl));
  }
  const double fraction = r.gpu_memory_fraction() == 0 ? 0.9 : r.gpu_memory_fraction();
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                        backend->MakeCache(o.page_size, policy, fraction));
  response->set_num_pages(cache->pool().num_pages());
  response->set_kv_cache_bytes(backend->pool_bytes());
  DescribeShard(backend->shape(), policy, o, response);
  return std::make_unique<Engine>(std::move(backend), std::move(cache), std::move(comm));
}
#endif

}  // namespace

WorkerService::WorkerService(std::function<void()> request_shutdown)
    : request_shutdown_(std::move(request_shutdown)) {}

absl::StatusOr<std::unique_ptr<Engine>> WorkerService::Load(const v1::LoadShardRequest& r,
                                                            v1::LoadShardResponse* response) {
  RAMI_ASSIGN_OR_RETURN(const ShardOptions o, ValidateRequest(r));
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                        Model::Load(r.model_dir(), {r.rank(), r.world_size()}));
  CachePolicy policy = model->shape().DefaultCachePolicy();
  if (!r.cache_policy().empty()) {
    RAMI_ASSIGN_OR_RETURN(policy,
                          CachePolicy::Parse(r.cache_policy(), model->config().dms.window_size));
  }
#ifdef RAMI_WITH_CUDA_BACKEND
  if (o.cuda_device >= 0) return LoadCuda(r, o, std::move(model), policy, response);
#endif
  // The CPU backend's page: fp32 K and V rows (a K-only latent row for MLA).
  const int64_t page_bytes = model->shape().KvPageBytes(o.page_size, sizeof(float));
  const int64_t num_pages = r.kv_cache_bytes() / page_bytes;
  if (num_pages < 1 || num_pages > INT32_MAX) {
    return Invalid("kv_cache_bytes", absl::StrCat("must hold 1…2^31 pages of ", page_bytes,
                                                  " bytes, found ", r.kv_cache_bytes()));
  }
  RAMI_ASSIGN_OR_RETURN(
      std::unique_ptr<KvCache> cache,
      model->shape().MakeCache({.page_size = o.page_size, .num_pages = static_cast<int>(num_pages)},
                               policy));
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Collectives> comm,
                        JoinHostCollectives(r, o.collective_timeout));
  response->set_num_pages(num_pages);
  response->set_kv_cache_bytes(num_pages * page_bytes);
  DescribeShard(model->shape(), policy, o, response);
  return std::make_unique<Engine>(std::move(model), std::move(cache), std::move(comm));
}

absl::Status WorkerService::MayLoad(const v1::Lease& lease) {
  if (lease_.holder.empty() || lease_.holder == lease.holder()) return absl::OkStatus();
  const absl::Duration left = lease_.expiry - absl::Now();
  if (left <= absl::ZeroDuration()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("LoadShard: lease: this worker serves coordinator \"", lease_.holder,
                   "\" (epoch ", lease_.epoch, ") whose lease lapses in ",
                   absl::FormatDuration(left), "; a worker serves one coordinator at a time"));
}

grpc::Status WorkerService::LoadShard(grpc::ServerContext*, const v1::LoadShardRequest* request,
                                      v1::LoadShardResponse* response) {
  const v1::Lease& lease = request->lease();
  if (!lease.holder().empty()) {
    if (lease.epoch() <= 0) {
      return ToGrpcStatus(
          Invalid("lease.epoch", absl::StrCat("expected > 0, found ", lease.epoch())));
    }
    if (!(lease.seconds() > 0 && lease.seconds() <= 3600)) {
      return ToGrpcStatus(
          Invalid("lease.seconds", absl::StrCat("expected (0, 3600], found ", lease.seconds())));
    }
  }
  {
    // The lease is taken before the (long) load, so a second coordinator is refused at once.
    absl::MutexLock lock(&lease_mu_);
    if (absl::Status s = MayLoad(lease); !s.ok()) return ToGrpcStatus(s);
    lease_.holder = lease.holder();
    lease_.epoch = lease.epoch();
    lease_.length = absl::Seconds(lease.seconds());
    lease_.expiry = absl::Now() + lease_.length;
  }
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
  engine_.reset();  // a reload replaces the shard (and frees its memory first)
  absl::StatusOr<std::unique_ptr<Engine>> engine = Load(*request, response);
  if (!engine.ok()) return ToGrpcStatus(engine.status());
  engine_ = std::move(*engine);
  rank_ = request->rank();
  return grpc::Status::OK;
}

grpc::Status WorkerService::RenewLease(grpc::ServerContext*, const v1::RenewLeaseRequest* request,
                                       v1::RenewLeaseResponse* response) {
  absl::MutexLock lock(&lease_mu_);
  if (request->holder().empty() || request->holder() != lease_.holder ||
      request->epoch() != lease_.epoch) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("RenewLease: the lease is held by \"", lease_.holder,
                                     "\" (epoch ", lease_.epoch, "), not \"", request->holder(),
                                     "\" (epoch ", request->epoch(), ")"));
  }
  lease_.expiry = absl::Now() + lease_.length;
  response->set_remaining_seconds(absl::ToDoubleSeconds(lease_.length));
  return grpc::Status::OK;
}

// A plan of another lease epoch than the shard's: its coordinator has lost this worker.
absl::Status WorkerService::CheckLease(int64_t epoch) {
  if (epoch == 0) return absl::OkStatus();
  absl::MutexLock lock(&lease_mu_);
  if (epoch != lease_.epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease lost: the shard is now served under epoch ", lease_.epoch,
                     " (holder \"", lease_.holder, "\"), the plan carries epoch ", epoch));
  }
  lease_.expiry = absl::Now() + lease_.length;  // a step renews the lease
  return absl::OkStatus();
}

grpc::Status WorkerService::Step(grpc::ServerContext*,
                                 grpc::ServerReaderWriter<v1::StepResult, v1::StepPlan>* stream) {
  v1::StepPlan plan;
  while (stream->Read(&plan)) {
    v1::StepResult result;
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status lease = CheckLease(plan.lease_epoch()); !lease.ok()) {
        result.set_step_id(plan.step_id());
        result.set_error_code(grpc::StatusCode::FAILED_PRECONDITION);
        result.set_error_message(std::string(lease.message()));
      } else if (engine_ == nullptr) {
        result.set_step_id(plan.step_id());
        result.set_error_code(grpc::StatusCode::FAILED_PRECONDITION);
        result.set_error_message("no shard loaded: call LoadShard first");
      } else {
        OutcomeToProto(engine_->Execute(PlanFromProto(plan)), plan.step_id(), rank_, &result);
      }
    }
    if (!stream->Write(result)) break;
  }
  return grpc::Status::OK;
}

grpc::Status WorkerService::Stats(grpc::ServerContext*, const v1::StatsRequest*,
                                  v1::StatsResponse* response) {
  absl::MutexLock lock(&mu_);
  response->set_loaded(engine_ != nullptr);
  if (engine_ == nullptr) return grpc::Status::OK;
  const EngineStats stats = engine_->Stats();
  CacheReport report;
  report.stats = stats.cache;
  CacheToProto(report, rank_, response->mutable_cache());
  response->set_steps(stats.steps);
  response->set_failed_steps(stats.failed_steps);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Health(grpc::ServerContext*, const v1::HealthRequest*,
                                   v1::HealthResponse* response) {
  absl::MutexLock lock(&mu_);
  if (engine_ == nullptr) {
    response->set_state(v1::HealthResponse::NOT_LOADED);
  } else if (engine_->Stats().collectives_broken) {
    response->set_state(v1::HealthResponse::BROKEN);
    response->set_detail("a collective failed; reload the shard");
  } else {
    response->set_state(v1::HealthResponse::SERVING);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerService::Shutdown(grpc::ServerContext*, const v1::ShutdownRequest*,
                                     v1::ShutdownResponse*) {
  {
    absl::MutexLock lock(&mu_);  // waits for the step in flight
    if (shutting_down_) return grpc::Status::OK;
    shutting_down_ = true;
    engine_.reset();
  }
  request_shutdown_();
  return grpc::Status::OK;
}

grpc::Status WorkerService::StoreSet(grpc::ServerContext*, const v1::StoreSetRequest* request,
                                     v1::StoreSetResponse*) {
  return ToGrpcStatus(store_.Set(request->key(), request->value()));
}

grpc::Status WorkerService::StoreGet(grpc::ServerContext*, const v1::StoreGetRequest* request,
                                     v1::StoreGetResponse* response) {
  if (!(request->timeout_seconds() >= 0 && request->timeout_seconds() <= 3600)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "StoreGet: timeout_seconds: expected [0, 3600]");
  }
  absl::StatusOr<std::vector<std::string>> values = store_.Get(
      {request->keys().begin(), request->keys().end()}, absl::Seconds(request->timeout_seconds()));
  if (!values.ok()) return ToGrpcStatus(values.status());
  for (std::string& value : *values) response->add_values(std::move(value));
  return grpc::Status::OK;
}

}  // namespace rami::service
