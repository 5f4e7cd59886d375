// The Worker service: LoadShard (checked, then through engine::LoadShard), the Step stream
// loop, stats, health, shutdown and the rendezvous store, each behind WorkerAuth.
#include "worker/service/worker_service.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "proto/status_conversion.h"
#include "proto/worker_credentials.h"
#include "worker/service/grpc_rendezvous_store.h"
#include "worker/service/plan_proto.h"
#include "worker/service/shard_preflight.h"
#include "worker/service/shard_proto.h"

// Returns the status as a grpc::Status from a service method when it is not OK.
#define RAMI_RETURN_GRPC_IF_ERROR(expr)                                         \
  do {                                                                          \
    if (const absl::Status rami_grpc_status_ = (expr); !rami_grpc_status_.ok()) \
      return ::rami::ToGrpcStatus(rami_grpc_status_);                           \
  } while (0)

namespace rami::service {

using engine::CacheReport;
using engine::EngineStats;

namespace v1 = worker::v1;

WorkerService::WorkerService(const WorkerServiceOptions& options,
                             std::function<void()> request_shutdown)
    : request_shutdown_(std::move(request_shutdown)),
      auth_(options.auth_token, options.tls.enabled()),
      tls_(options.tls),
      model_roots_(options.model_roots) {}

absl::StatusOr<engine::ShardOptions> WorkerService::Prepare(const v1::LoadShardRequest& r) {
  RAMI_RETURN_IF_ERROR(WorkerLease::Validate(r.lease()));
  // Refused at once, not after the load in progress.
  RAMI_RETURN_IF_ERROR(lease_.CanTake(r.lease()));
  RAMI_ASSIGN_OR_RETURN(engine::ShardOptions options, ShardOptionsFromProto(r));
  if (options.shard.world_size > 1 && !auth_.open()) {
    RAMI_RETURN_IF_ERROR(
        proto::ValidateToken(r.rendezvous().store_token(), "LoadShard: rendezvous.store_token"));
  }
  absl::StatusOr<std::string> dir = model_roots_.Confine(options.model_dir);
  if (!dir.ok()) {
    return absl::Status(dir.status().code(), absl::StrCat("LoadShard: ", dir.status().message()));
  }
  options.model_dir = *dir;
  if (absl::Status s = PreflightShard(options); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("LoadShard: ", s.message()));
  }
  return options;
}

absl::StatusOr<std::unique_ptr<engine::Engine>> WorkerService::Load(
    const v1::LoadShardRequest& r, const engine::ShardOptions& options,
    v1::LoadShardResponse* response) {
  // The group's store is rank 0's service; a world of one joins no group and reads none.
  collectives::InMemoryRendezvousStore no_group;
  std::optional<GrpcRendezvousStore> group;
  if (options.shard.world_size > 1) {
    group.emplace(r.rendezvous().store_address(), r.rendezvous().store_token(),
                  options.collective_timeout, tls_);
  }
  absl::StatusOr<engine::LoadedShard> shard = engine::LoadShard(
      options, group.has_value() ? static_cast<collectives::RendezvousStore&>(*group) : no_group);
  if (!shard.ok()) {
    return absl::Status(shard.status().code(),
                        absl::StrCat("LoadShard: ", shard.status().message()));
  }
  ShardInfoToProto(shard->info, response);
  // The worker's log: how its GPU's memory is used, and what the load left in host memory.
  if (!shard->info.memory_plan.empty()) {
    std::printf("rami-worker: rank %d: %s\n", r.rank(), shard->info.memory_plan.c_str());
  }
  std::printf("rami-worker: rank %d: loaded; %.1f MiB of anonymous host memory resident\n",
              r.rank(), shard->info.host_anon_rss_bytes / double(1 << 20));
  std::fflush(stdout);
  return std::move(shard->engine);
}

grpc::Status WorkerService::LoadShard(grpc::ServerContext* ctx, const v1::LoadShardRequest* request,
                                      v1::LoadShardResponse* response) {
  RAMI_RETURN_GRPC_IF_ERROR(auth_.Authorize(*ctx, WorkerRpc::kLoadShard));
  absl::StatusOr<engine::ShardOptions> options = Prepare(*request);
  if (!options.ok()) return ToGrpcStatus(options.status());
  absl::MutexLock lock(&mu_);
  if (shutting_down_.load()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
  RAMI_RETURN_GRPC_IF_ERROR(lease_.Take(request->lease()));
  // Rank 0 serves this incarnation's store: its keys only, its peers only.
  if (options->shard.world_size > 1 && options->shard.rank == 0) {
    store_.StartGroup(options->group_id);
    auth_.SetStoreToken(request->rendezvous().store_token());
  } else {
    auth_.SetStoreToken("");
  }
  engine_.reset();  // a reload replaces the shard (and frees its memory first)
  absl::StatusOr<std::unique_ptr<engine::Engine>> engine = Load(*request, *options, response);
  if (!engine.ok()) return ToGrpcStatus(engine.status());
  engine_ = std::move(*engine);
  rank_ = request->rank();
  return grpc::Status::OK;
}

grpc::Status WorkerService::RenewLease(grpc::ServerContext* ctx,
                                       const v1::RenewLeaseRequest* request,
                                       v1::RenewLeaseResponse* response) {
  RAMI_RETURN_GRPC_IF_ERROR(auth_.Authorize(*ctx, WorkerRpc::kRenewLease));
  absl::StatusOr<double> seconds = lease_.Renew(request->holder(), request->epoch());
  if (!seconds.ok()) return ToGrpcStatus(seconds.status());
  response->set_remaining_seconds(*seconds);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Step(grpc::ServerContext* ctx,
                                 grpc::ServerReaderWriter<v1::StepResult, v1::StepPlan>* stream) {
  RAMI_RETURN_GRPC_IF_ERROR(auth_.Authorize(*ctx, WorkerRpc::kStep));
  v1::StepPlan plan;
  while (stream->Read(&plan)) {
    v1::StepResult result;
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status lease = lease_.Check(plan.lease_epoch()); !lease.ok()) {
        result.set_step_id(plan.step_id());
        result.set_error_code(grpc::StatusCode::FAILED_PRECONDITION);
        result.set_error_message(std::string(lease.message()));
      } else if (engine_ == nullptr) {
        result.set_step_id(plan.step_id());
        result.set_error_code(grpc::StatusCode::FAILED_PRECONDITION);
        result.set_error_message("no shard loaded: call LoadShard first");
      } else if (absl::StatusOr<engine::StepPlan> converted = PlanFromProto(plan);
                 !converted.ok()) {
        // Every rank gets the same plan and refuses it here alike, before any collective.
        result.set_step_id(plan.step_id());
        result.set_error_code(static_cast<int32_t>(converted.status().code()));
        result.set_error_message(std::string(converted.status().message()));
      } else {
        OutcomeToProto(engine_->Execute(*converted), plan.step_id(), rank_, &result);
      }
    }
    if (!stream->Write(result)) break;
  }
  return grpc::Status::OK;
}

grpc::Status WorkerService::Stats(grpc::ServerContext* ctx, const v1::StatsRequest*,
                                  v1::StatsResponse* response) {
  RAMI_RETURN_GRPC_IF_ERROR(auth_.Authorize(*ctx, WorkerRpc::kStats));
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

grpc::Status WorkerService::Health(grpc::ServerContext* ctx, const v1::HealthRequest*,
                                   v1::HealthResponse* response) {
  RAMI_RETURN_GRPC_IF_ERROR(auth_.Authorize(*ctx, WorkerRpc::kHealth));
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

void WorkerService::Stop() { store_.Close(); }

grpc::Status WorkerService::Shutdown(grpc::ServerContext* ctx, const v1::ShutdownRequest* request,
                                     v1::ShutdownResponse*) {
  RAMI_RETURN_GRPC_IF_ERROR(auth_.Authorize(*ctx, WorkerRpc::kShutdown));
  RAMI_RETURN_GRPC_IF_ERROR(lease_.CheckShutdown(request->holder(), request->epoch()));
  Stop();  // a pending StoreGet must not hold the server's shutdown
  // Not under mu_: the step in flight may never end (a collective waiting on a dead peer).
  if (!shutting_down_.exchange(true)) request_shutdown_();
  return grpc::Status::OK;
}

grpc::Status WorkerService::StoreSet(grpc::ServerContext* ctx, const v1::StoreSetRequest* request,
                                     v1::StoreSetResponse*) {
  RAMI_RETURN_GRPC_IF_ERROR(auth_.Authorize(*ctx, WorkerRpc::kStoreSet));
  return ToGrpcStatus(store_.Set(request->key(), request->value()));
}

grpc::Status WorkerService::StoreGet(grpc::ServerContext* ctx, const v1::StoreGetRequest* request,
                                     v1::StoreGetResponse* response) {
  RAMI_RETURN_GRPC_IF_ERROR(auth_.Authorize(*ctx, WorkerRpc::kStoreGet));
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
