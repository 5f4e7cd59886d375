// WorkerService: the rami.worker.v1.Worker gRPC service of one rank — a thin layer over the
// Engine (which owns model, cache and collectives). One step or load runs at a time.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rami/worker/v1/worker.grpc.pb.h"
#include "worker/collectives/rendezvous_store.h"
#include "worker/engine/engine.h"
#include "worker/service/worker_lease.h"

namespace rami::service {

class WorkerService final : public worker::v1::Worker::Service {
 public:
  // `request_shutdown` is called (once) by a Shutdown RPC. The RPC does not wait for a step in
  // flight: that step may wait in a collective on a dead peer (main() bounds the wait).
  explicit WorkerService(std::function<void()> request_shutdown);

  grpc::Status LoadShard(grpc::ServerContext* ctx, const worker::v1::LoadShardRequest* request,
                         worker::v1::LoadShardResponse* response) override;
  grpc::Status Step(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<worker::v1::StepResult, worker::v1::StepPlan>* stream) override;
  grpc::Status Stats(grpc::ServerContext* ctx, const worker::v1::StatsRequest* request,
                     worker::v1::StatsResponse* response) override;
  grpc::Status Health(grpc::ServerContext* ctx, const worker::v1::HealthRequest* request,
                      worker::v1::HealthResponse* response) override;
  grpc::Status Shutdown(grpc::ServerContext* ctx, const worker::v1::ShutdownRequest* request,
                        worker::v1::ShutdownResponse* response) override;
  // Ends every wait on this worker's rendezvous store (its StoreGet handlers return
  // UNAVAILABLE), so that the server can stop at once. Thread-safe; SIGTERM calls it too.
  void Stop();
  grpc::Status RenewLease(grpc::ServerContext* ctx, const worker::v1::RenewLeaseRequest* request,
                          worker::v1::RenewLeaseResponse* response) override;
  grpc::Status StoreSet(grpc::ServerContext* ctx, const worker::v1::StoreSetRequest* request,
                        worker::v1::StoreSetResponse* response) override;
  grpc::Status StoreGet(grpc::ServerContext* ctx, const worker::v1::StoreGetRequest* request,
                        worker::v1::StoreGetResponse* response) override;

 private:
  absl::StatusOr<std::unique_ptr<engine::Engine>> Load(const worker::v1::LoadShardRequest& request,
                                                       worker::v1::LoadShardResponse* response);

  std::function<void()> request_shutdown_;
  collectives::InMemoryRendezvousStore store_;  // served to the group when this is rank 0
  WorkerLease lease_;
  absl::Mutex mu_;
  std::unique_ptr<engine::Engine> engine_ ABSL_GUARDED_BY(mu_);
  int rank_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> shutting_down_ = false;
};

}  // namespace rami::service
