// WorkerService: the rami.worker.v1.Worker gRPC service of one rank — a thin layer over the
// Engine (which owns model, cache and collectives). One step or load runs at a time. Every
// call is authorized first (WorkerAuth: who may call what), every mutating one checked
// against the lease (WorkerLease).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/tls/tls.h"
#include "rami/worker/v1/worker.grpc.pb.h"
#include "worker/collectives/rendezvous_store.h"
#include "worker/engine/engine.h"
#include "worker/engine/shard.h"
#include "worker/service/group_store.h"
#include "worker/service/model_roots.h"
#include "worker/service/worker_auth.h"
#include "worker/service/worker_lease.h"

namespace rami::service {

// What rami-worker's flags say about its port (main.cc).
struct WorkerServiceOptions {
  // The coordinator's secret (--auth_token_file); nullopt: the open port of loopback setups.
  // Only its hash is kept.
  std::optional<std::string> auth_token;
  ModelRoots model_roots;  // --model_roots: where LoadShard may read models
  // Mutual TLS (--tls_cert_file, --tls_key_file, --tls_ca_file): this worker's certificate
  // (CN rami-worker) and the CA every caller's certificate must chain to; the port then
  // serves TLS only, and a caller's role is its certificate's CN. Empty: plaintext.
  tls::TlsFiles tls;
};

class WorkerService final : public worker::v1::Worker::Service {
 public:
  // `request_shutdown` is called (once) by a Shutdown RPC. The RPC does not wait for a step in
  // flight: that step may wait in a collective on a dead peer (main() bounds the wait).
  WorkerService(const WorkerServiceOptions& options, std::function<void()> request_shutdown);

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
  // Everything a load checks before the serving shard is dropped: the request's fields, the
  // lease, model_dir inside the roots (returned canonical in the options), the checkpoint.
  absl::StatusOr<engine::ShardOptions> Prepare(const worker::v1::LoadShardRequest& request);
  absl::StatusOr<std::unique_ptr<engine::Engine>> Load(const worker::v1::LoadShardRequest& request,
                                                       const engine::ShardOptions& options,
                                                       worker::v1::LoadShardResponse* response);

  std::function<void()> request_shutdown_;
  WorkerAuth auth_;
  const tls::TlsFiles tls_;  // also this rank's identity towards its group's store
  const ModelRoots model_roots_;
  GroupStore store_;  // served to the group when this is rank 0
  WorkerLease lease_;
  absl::Mutex mu_;
  std::unique_ptr<engine::Engine> engine_ ABSL_GUARDED_BY(mu_);
  int rank_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> shutting_down_ = false;
};

}  // namespace rami::service
