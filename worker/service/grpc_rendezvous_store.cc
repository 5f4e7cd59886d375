// StoreSet / StoreGet calls with deadlines, retried while rank 0 does not know the token yet.
#include "worker/service/grpc_rendezvous_store.h"

#include <algorithm>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "proto/status_conversion.h"
#include "proto/worker_credentials.h"

namespace rami::service {

namespace {

// `call(deadline)` until it is not refused UNAUTHENTICATED (rank 0 has not yet received its
// own LoadShard, which registers the group's token) or `deadline` is near.
template <typename Call>
absl::Status UntilAccepted(absl::Time deadline, Call call) {
  while (true) {
    absl::Status s = call(deadline);
    if (!absl::IsUnauthenticated(s) || absl::Now() + absl::Milliseconds(50) >= deadline) return s;
    absl::SleepFor(absl::Milliseconds(50));
  }
}

}  // namespace

GrpcRendezvousStore::GrpcRendezvousStore(const std::string& address, const std::string& store_token,
                                         absl::Duration set_timeout, const tls::TlsFiles& tls)
    : stub_(worker::v1::Worker::NewStub(proto::NewWorkerChannel(address, store_token, tls))),
      set_timeout_(set_timeout) {}

absl::Status GrpcRendezvousStore::Set(const std::string& key, const std::string& value) {
  worker::v1::StoreSetRequest request;
  request.set_key(key);
  request.set_value(value);
  return UntilAccepted(absl::Now() + set_timeout_, [&](absl::Time deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    ctx.set_wait_for_ready(true);  // rank 0 may still be starting
    worker::v1::StoreSetResponse response;
    return FromGrpcStatus(stub_->StoreSet(&ctx, request, &response));
  });
}

absl::StatusOr<std::vector<std::string>> GrpcRendezvousStore::Get(
    const std::vector<std::string>& keys, absl::Duration timeout) {
  const absl::Time wait_end = absl::Now() + timeout;
  worker::v1::StoreGetRequest request;
  for (const std::string& key : keys) request.add_keys(key);
  worker::v1::StoreGetResponse response;
  // A little beyond the server's own wait, so its DEADLINE_EXCEEDED comes back with a message.
  absl::Status s = UntilAccepted(wait_end + absl::Seconds(2), [&](absl::Time deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    ctx.set_wait_for_ready(true);
    request.set_timeout_seconds(
        absl::ToDoubleSeconds(std::max(wait_end - absl::Now(), absl::ZeroDuration())));
    return FromGrpcStatus(stub_->StoreGet(&ctx, request, &response));
  });
  if (!s.ok()) return s;
  return std::vector<std::string>(response.values().begin(), response.values().end());
}

}  // namespace rami::service
