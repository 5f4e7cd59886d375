// The bearer tokens of the worker port (worker.proto, "who may call what"): reading the secret
// of --auth_token_file / --worker_auth_token_file, drawing a group's store token, and the one
// channel factory through which every client of a worker sends its token as
// `authorization: Bearer <token>` call metadata on every call.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/channel.h>
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/tls/tls.h"

namespace rami::proto {

// Call metadata key and scheme of the worker's credentials (RFC 6750's header, lower-cased as
// gRPC metadata keys are).
inline constexpr char kAuthorizationKey[] = "authorization";
inline constexpr char kBearerPrefix[] = "Bearer ";
// A token is printable ASCII without spaces (it travels in a metadata value), of this length.
inline constexpr size_t kMinTokenChars = 16;
inline constexpr size_t kMaxTokenChars = 256;

// OK when `token` is a usable token; else INVALID_ARGUMENT naming `what` and the rule broken.
absl::Status ValidateToken(absl::string_view token, absl::string_view what);
// The secret in the file at `path` (surrounding whitespace, e.g. a final newline, dropped),
// validated. `flag` names the flag in errors ("--auth_token_file").
absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag);
// 64 hex digits from the kernel's random source (getrandom): a group's store token.
std::string NewRandomToken();

// A channel to a worker at `address` that sends `bearer_token` on every call (none when
// empty): plaintext, or mutual TLS with `tls` (this side's certificate and the deployment's CA;
// the worker's certificate must chain to the CA, its host name is not checked: workers are
// dialled by IP). The single place a worker's clients attach credentials.
std::shared_ptr<grpc::Channel> NewWorkerChannel(const std::string& address,
                                                const std::string& bearer_token,
                                                const tls::TlsFiles& tls = {});

}  // namespace rami::proto
