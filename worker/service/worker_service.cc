// The Worker service: LoadShard (through engine::LoadShard), the Step stream loop, stats,
// health, shutdown and the rendezvous store.
#include "worker/service/worker_service.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <optional>

#include "absl/strings/str_cat.h"
#include "proto/status_conversion.h"
#include "worker/service/grpc_rendezvous_store.h"
#include "worker/service/plan_proto.h"
#include "worker/service/shard_proto.h"

namespace rami::service {

using engine::CacheReport;
using engine::EngineStats;

namespace v1 = worker::v1;

WorkerService::WorkerService(std::function<void()> request_shutdown)
    : request_shutdown_(std::move(request_shutdown)) {}

absl::StatusOr<std::unique_ptr<engine::Engine>> WorkerService::Load(
    const v1::LoadShardRequest& r, v1::LoadShardResponse* response) {
  absl::StatusOr<engine::ShardOptions> options = ShardOptionsFromProto(r);
  if (!options.ok()) return options.status();
  // The group's store is rank 0's service; a world of one joins no group and reads none.
  collectives::InMemoryRendezvousStore no_group;
  std::optional<GrpcRendezvousStore> group;
  if (options->shard.world_size > 1) {
    group.emplace(r.rendezvous().store_address(), options->collective_timeout);
  }
  absl::StatusOr<engine::LoadedShard> shard = engine::LoadShard(
      *options, group.has_value() ? static_cast<collectives::RendezvousStore&>(*group) : no_group);
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

grpc::Status WorkerService::LoadShard(grpc::ServerContext*, const v1::LoadShardRequest* request,
                                      v1::LoadShardResponse* response) {
  if (absl::Status s = lease_.Take(request->lease()); !s.ok()) return ToGrpcStatus(s);
  absl::MutexLock lock(&mu_);
  if (shutting_down_.load()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
  engine_.reset();  // a reload replaces the shard (and frees its memory first)
  absl::StatusOr<std::unique_ptr<engine::Engine>> engine = Load(*request, response);
  if (!engine.ok()) return ToGrpcStatus(engine.status());
  engine_ = std::move(*engine);
  rank_ = request->rank();
  return grpc::Status::OK;
}

grpc::Status WorkerService::RenewLease(grpc::ServerContext*, const v1::RenewLeaseRequest* request,
                                       v1::RenewLeaseResponse* response) {
  absl::StatusOr<double> seconds = lease_.Renew(request->holder(), request->epoch());
  if (!seconds.ok()) return ToGrpcStatus(seconds.status());
  response->set_remaining_seconds(*seconds);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Step(grpc::ServerContext*,
                                 grpc::ServerReaderWriter<v1::StepResult, v1::StepPlan>* stream) {
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

void WorkerService::Stop() { store_.Close(); }

grpc::Status WorkerService::Shutdown(grpc::ServerContext*, const v1::ShutdownRequest*,
                                     v1::ShutdownResponse*) {
  Stop();  // a pending StoreGet must not hold the server's shutdown
  // Not under mu_: the step in flight may never end (a collective waiting on a dead peer).
  if (!shutting_down_.exchange(true)) request_shutdown_();
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
