// TLS for rami's ports, from PEM files: gRPC server and channel credentials (the public API,
// and mutual TLS on the worker control plane) and a certificate for the HTTP port that is
// re-read on demand (SIGHUP). Certificates, keys and CA bundles are files so that Kubernetes
// Secrets and cert-manager can rotate them; `deploy/make-dev-certs.sh` makes a development CA.
//
// Identities on the worker plane are certificate common names (CN): the coordinator's
// certificate says "rami-coordinator", a worker's "rami-worker" (kCoordinatorIdentity,
// kWorkerIdentity). Whoever holds a certificate of the deployment's CA with that CN has that
// role; host names are not checked on that plane (workers are addressed by IP).
#pragma once

#include <memory>
#include <string>

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace rami::tls {

inline constexpr absl::string_view kCoordinatorIdentity = "rami-coordinator";
inline constexpr absl::string_view kWorkerIdentity = "rami-worker";

// One TLS identity as files: its certificate chain and private key (PEM), and the CA bundle that
// the other side's certificate must chain to (for a server: its clients', which makes it mutual
// TLS; for a client: the server's — empty means the system's roots).
struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  std::string ca_file;

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

// Reads the files and checks them: the certificate and the key parse as PEM and belong
// together, the CA bundle (when set) parses. `flags` names the flags in errors, e.g.
// "--tls_cert_file/--tls_key_file". Errors are INVALID_ARGUMENT.
absl::Status Check(const TlsFiles& files, absl::string_view flags);

// The worker plane's files, which are mutual TLS or nothing: OK when none is given; otherwise
// all three (Check()'s errors, or "<prefix>ca_file: required ..."). `prefix` is the flags'
// common part, "--tls_" or "--worker_tls_".
absl::Status CheckMutual(const TlsFiles& files, absl::string_view prefix);

// Server credentials for a gRPC port: TLS with files.cert_file/key_file (re-read by gRPC's file
// watcher every `refresh_seconds`, so a rotated certificate serves new connections within
// that); with files.ca_file, every client must present a certificate that chains to it.
// Check() the files first.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsFiles& files,
                                                           unsigned refresh_seconds = 1);

// Channel credentials for a client: the server's certificate must chain to files.ca_file (the
// system roots when empty); files.cert_file/key_file, when set, are this client's certificate
// (mutual TLS). `check_host`: the server's certificate must also name the address dialled.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TlsFiles& files,
                                                             bool check_host);

// The common name of the peer's verified client certificate; "" when it presented none.
std::string PeerCommonName(const grpc::AuthContext& context);

// The HTTP port's certificate and key, loaded from files and swapped whole on Reload(); each
// TLS handshake takes the current pair (an SSL_CTX certificate callback). Thread-safe.
class ReloadableCertificate {
 public:
  struct Pair;  // a certificate chain and its key (tls.cc)

  // Loads the files once; errors as Check().
  static absl::StatusOr<std::unique_ptr<ReloadableCertificate>> Load(const TlsFiles& files,
                                                                     absl::string_view flags);
  ~ReloadableCertificate();

  // Reads the files again; on an error the current pair stays in use.
  absl::Status Reload();
  // Prepares `ctx` to serve with this certificate (TLS 1.2 or later). True on success.
  bool Install(SSL_CTX& ctx);

 private:
  ReloadableCertificate(TlsFiles files, std::string flags);
  static int OnHandshake(SSL* ssl, void* self);

  const TlsFiles files_;
  const std::string flags_;
  absl::Mutex mu_;
  std::shared_ptr<const Pair> pair_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rami::tls
