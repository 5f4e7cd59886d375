// WorkerAuth: who may call what on the worker port — the one place a call's credentials become
// a role and a role is checked against the RPC. The coordinator (control role: the secret of
// --auth_token_file) drives LoadShard, Step, Shutdown and RenewLease and may read Stats and
// Health; a group's peer ranks (peer role: the current load's Rendezvous.store_token) use
// StoreSet and StoreGet only. Credentials are `authorization: Bearer <token>` call metadata;
// only SHA-256 hashes of the tokens are kept, compared in constant time. (mTLS will map a
// peer certificate's identity to the same roles in Authorize.) With mutual TLS the caller's
// verified certificate names its role — CN rami-coordinator: control, CN rami-worker: peer,
// any other CN: none — and a configured token must match that role as well.
//
// Open mode (no control token): every call is allowed, as on a worker before auth — main.cc
// permits it on a loopback listen address only, with a warning.
#pragma once

#include <array>
#include <optional>
#include <string>

#include <grpcpp/server_context.h>
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace rami::service {

enum class WorkerRpc {
  kLoadShard,
  kStep,
  kStats,
  kHealth,
  kShutdown,
  kRenewLease,
  kStoreSet,
  kStoreGet
};
enum class CallerRole { kControl, kPeer };

const char* RpcName(WorkerRpc rpc);
// The role that may call `rpc`.
CallerRole RequiredRole(WorkerRpc rpc);

using TokenHash = std::array<unsigned char, 32>;  // SHA-256
TokenHash HashToken(absl::string_view token);

class WorkerAuth {
 public:
  // `control_token`: nullopt = no token. `mtls`: the port serves mutual TLS (every caller has
  // a verified certificate). Neither: open mode.
  explicit WorkerAuth(const std::optional<std::string>& control_token, bool mtls = false);

  bool open() const { return !control_.has_value() && !mtls_; }
  // The current load's store token (rank 0 of a group); "" = no peer is accepted. Thread-safe.
  void SetStoreToken(absl::string_view token);

  // OK when the caller may call `rpc`; UNAUTHENTICATED without credentials or with unknown
  // ones, PERMISSION_DENIED for a known token of the other role. Messages name the RPC, never
  // a token.
  absl::Status Authorize(const grpc::ServerContext& ctx, WorkerRpc rpc) const;
  // The same from the raw `authorization` value (nullopt: absent) — what Authorize reads.
  absl::Status AuthorizeHeader(std::optional<absl::string_view> authorization, WorkerRpc rpc) const;

 private:
  // The role a verified certificate's common name holds; PERMISSION_DENIED for another CN.
  absl::StatusOr<CallerRole> CertificateRole(const grpc::ServerContext& ctx, WorkerRpc rpc) const;

  std::optional<TokenHash> control_;
  bool mtls_ = false;
  mutable absl::Mutex mu_;
  std::optional<TokenHash> store_ ABSL_GUARDED_BY(mu_);
};

// True when `listen` (host:port, [v6]:port) binds a loopback address only: 127.0.0.0/8,
// ::1 or "localhost". Wildcards (0.0.0.0, [::]) and other hosts are not.
bool IsLoopbackListenAddress(absl::string_view listen);

}  // namespace rami::service
