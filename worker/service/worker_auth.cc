// WorkerAuth: bearer tokens → roles → RPCs.
#include "worker/service/worker_auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/host_port.h"
#include "base/tls/tls.h"
#include "proto/worker_credentials.h"

namespace rami::service {

const char* RpcName(WorkerRpc rpc) {
  switch (rpc) {
    case WorkerRpc::kLoadShard:
      return "LoadShard";
    case WorkerRpc::kStep:
      return "Step";
    case WorkerRpc::kStats:
      return "Stats";
    case WorkerRpc::kHealth:
      return "Health";
    case WorkerRpc::kShutdown:
      return "Shutdown";
    case WorkerRpc::kRenewLease:
      return "RenewLease";
    case WorkerRpc::kStoreSet:
      return "StoreSet";
    case WorkerRpc::kStoreGet:
      return "StoreGet";
  }
  return "?";
}

CallerRole RequiredRole(WorkerRpc rpc) {
  switch (rpc) {
    case WorkerRpc::kLoadShard:
    case WorkerRpc::kStep:
    case WorkerRpc::kStats:
    case WorkerRpc::kHealth:
    case WorkerRpc::kShutdown:
    case WorkerRpc::kRenewLease:
      return CallerRole::kControl;
    case WorkerRpc::kStoreSet:
    case WorkerRpc::kStoreGet:
      return CallerRole::kPeer;
  }
  return CallerRole::kControl;
}

TokenHash HashToken(absl::string_view token) {
  TokenHash hash;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), hash.data());
  return hash;
}

namespace {

bool SameHash(const TokenHash& a, const TokenHash& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

const char* RoleName(CallerRole role) {
  switch (role) {
    case CallerRole::kControl:
      return "the coordinator's (control)";
    case CallerRole::kPeer:
      return "a group peer's (store)";
  }
  return "?";
}

}  // namespace

WorkerAuth::WorkerAuth(const std::optional<std::string>& control_token, bool mtls) : mtls_(mtls) {
  if (control_token.has_value()) control_ = HashToken(*control_token);
}

void WorkerAuth::SetStoreToken(absl::string_view token) {
  absl::MutexLock lock(&mu_);
  if (token.empty()) {
    store_.reset();
  } else {
    store_ = HashToken(token);
  }
}

absl::Status WorkerAuth::AuthorizeHeader(std::optional<absl::string_view> authorization,
                                         WorkerRpc rpc) const {
  if (!control_.has_value()) return absl::OkStatus();  // no tokens (open, or certificates only)
  absl::string_view token = authorization.value_or("");
  if (!absl::ConsumePrefix(&token, proto::kBearerPrefix) || token.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat(RpcName(rpc), ": no credentials: this worker takes `",
                     proto::kAuthorizationKey, ": Bearer <token>` call metadata"));
  }
  // Both hashes are always compared, so the time taken says nothing about which one matched.
  const TokenHash presented = HashToken(token);
  const bool control = SameHash(presented, *control_);
  bool peer = false;
  {
    absl::MutexLock lock(&mu_);
    peer = store_.has_value() && SameHash(presented, *store_);
  }
  if (!control && !peer) {
    return absl::UnauthenticatedError(
        absl::StrCat(RpcName(rpc), ": the bearer token is not one this worker accepts"));
  }
  const CallerRole role = control ? CallerRole::kControl : CallerRole::kPeer;
  const CallerRole required = RequiredRole(rpc);
  if (role != required) {
    return absl::PermissionDeniedError(absl::StrCat(RpcName(rpc), ": ", RoleName(required),
                                                    " credentials required; the caller has ",
                                                    RoleName(role), " token"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CallerRole> WorkerAuth::CertificateRole(const grpc::ServerContext& ctx,
                                                       WorkerRpc rpc) const {
  const std::shared_ptr<const grpc::AuthContext> context = ctx.auth_context();
  const std::string cn = context != nullptr ? tls::PeerCommonName(*context) : "";
  if (cn == tls::kCoordinatorIdentity) return CallerRole::kControl;
  if (cn == tls::kWorkerIdentity) return CallerRole::kPeer;
  // Only the deployment's CA signs these; a certificate of it with another name has no role.
  return absl::PermissionDeniedError(absl::StrCat(RpcName(rpc), ": the caller's certificate (CN \"",
                                                  cn.substr(0, 64), "\") holds no role here; ",
                                                  tls::kCoordinatorIdentity, " or ",
                                                  tls::kWorkerIdentity, " expected"));
}

absl::Status WorkerAuth::Authorize(const grpc::ServerContext& ctx, WorkerRpc rpc) const {
  if (mtls_) {
    absl::StatusOr<CallerRole> role = CertificateRole(ctx, rpc);
    if (!role.ok()) return role.status();
    const CallerRole required = RequiredRole(rpc);
    if (*role != required) {
      return absl::PermissionDeniedError(absl::StrCat(RpcName(rpc), ": ", RoleName(required),
                                                      " credentials required; the caller's "
                                                      "certificate is ",
                                                      RoleName(*role)));
    }
  }
  if (!control_.has_value()) return absl::OkStatus();
  const auto& metadata = ctx.client_metadata();
  const auto it = metadata.find(proto::kAuthorizationKey);
  std::optional<absl::string_view> header;
  if (it != metadata.end()) header = absl::string_view(it->second.data(), it->second.size());
  return AuthorizeHeader(header, rpc);
}

bool IsLoopbackListenAddress(absl::string_view listen) {
  const absl::string_view host = HostOf(listen);
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8, written as four decimal octets.
  if (!absl::StartsWith(host, "127.")) return false;
  int dots = 0;
  for (const char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

}  // namespace rami::service
