// GrpcRendezvousStore: the collectives' rendezvous store reached through the control plane —
// rank 0's Worker service (StoreSet / StoreGet) — so that ranks need no shared filesystem.
// Every call carries the group's store token (Rendezvous.store_token). Rank 0 accepts it only
// once its own LoadShard has begun, so calls refused UNAUTHENTICATED are retried until their
// deadline.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/tls/tls.h"
#include "rami/worker/v1/worker.grpc.pb.h"
#include "worker/collectives/rendezvous_store.h"

namespace rami::service {

class GrpcRendezvousStore final : public collectives::RendezvousStore {
 public:
  // `address`: host:port of the group's rank 0. `set_timeout` bounds a Set (the group's
  // collective timeout: an unreachable rank 0 must not hold a load longer than that).
  // `store_token`: the load's Rendezvous.store_token ("" on an open worker port). `tls`: this
  // worker's certificate and the deployment's CA (mutual TLS), or none (plaintext).
  GrpcRendezvousStore(const std::string& address, const std::string& store_token,
                      absl::Duration set_timeout = absl::Seconds(30),
                      const tls::TlsFiles& tls = {});
  absl::Status Set(const std::string& key, const std::string& value) override;
  absl::StatusOr<std::vector<std::string>> Get(const std::vector<std::string>& keys,
                                               absl::Duration timeout) override;

 private:
  std::unique_ptr<worker::v1::Worker::Stub> stub_;
  absl::Duration set_timeout_;
};

}  // namespace rami::service
