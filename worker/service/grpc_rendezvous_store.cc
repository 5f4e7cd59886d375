// StoreSet / StoreGet calls with deadlines.
#include "worker/service/grpc_rendezvous_store.h"

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "proto/status_conversion.h"

namespace rami::service {

GrpcRendezvousStore::GrpcRendezvousStore(const std::string& address, absl::Duration set_timeout)
    : stub_(worker::v1::Worker::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
      set_timeout_(set_timeout) {}

absl::Status GrpcRendezvousStore::Set(const std::string& key, const std::string& value) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + set_timeout_));
  ctx.set_wait_for_ready(true);  // rank 0 may still be starting
  worker::v1::StoreSetRequest request;
  request.set_key(key);
  request.set_value(value);
  worker::v1::StoreSetResponse response;
  return FromGrpcStatus(stub_->StoreSet(&ctx, request, &response));
}

absl::StatusOr<std::vector<std::string>> GrpcRendezvousStore::Get(
    const std::vector<std::string>& keys, absl::Duration timeout) {
  grpc::ClientContext ctx;
  // A little beyond the server's own wait, so its DEADLINE_EXCEEDED comes back with a message.
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout + absl::Seconds(2)));
  ctx.set_wait_for_ready(true);
  worker::v1::StoreGetRequest request;
  for (const std::string& key : keys) request.add_keys(key);
  request.set_timeout_seconds(absl::ToDoubleSeconds(timeout));
  worker::v1::StoreGetResponse response;
  if (absl::Status s = FromGrpcStatus(stub_->StoreGet(&ctx, request, &response)); !s.ok()) {
    return s;
  }
  return std::vector<std::string>(response.values().begin(), response.values().end());
}

}  // namespace rami::service
