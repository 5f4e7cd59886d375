// TLS credentials from PEM files (OpenSSL for checking and for the HTTP port, gRPC's TLS
// credentials with its file watcher for the gRPC ports).
#include "base/tls/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rami::tls {
namespace {

namespace gx = grpc::experimental;

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

// Every certificate in a PEM file, in order (the leaf first in a chain file).
absl::StatusOr<std::vector<X509*>> ReadCertificates(const std::string& path,
                                                    absl::string_view what) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot read ", path));
  }
  std::vector<X509*> certs;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) certs.push_back(cert);
  ERR_clear_error();  // the end of the file reads as an error
  BIO_free(bio);
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", path, " holds no PEM certificate"));
  }
  return certs;
}

absl::StatusOr<EVP_PKEY*> ReadKey(const std::string& path, absl::string_view what) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(what, ": cannot read ", path));
  }
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", path, " holds no PEM private key (", OpenSslError(), ")"));
  }
  return key;
}

void Free(std::vector<X509*>& certs) {
  for (X509* c : certs) X509_free(c);
  certs.clear();
}

}  // namespace

// A certificate chain (leaf first) and its key; owns its references.
struct ReloadableCertificate::Pair {
  std::vector<X509*> chain;
  EVP_PKEY* key = nullptr;
  ~Pair() {
    Free(chain);
    EVP_PKEY_free(key);
  }
};

namespace {

absl::StatusOr<std::shared_ptr<ReloadableCertificate::Pair>> ReadPair(const TlsFiles& files,
                                                                      absl::string_view flags) {
  if (files.cert_file.empty() || files.key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flags, ": a certificate and its key go together; give both"));
  }
  auto pair = std::make_shared<ReloadableCertificate::Pair>();
  absl::StatusOr<std::vector<X509*>> chain = ReadCertificates(files.cert_file, flags);
  if (!chain.ok()) return chain.status();
  pair->chain = *std::move(chain);
  absl::StatusOr<EVP_PKEY*> key = ReadKey(files.key_file, flags);
  if (!key.ok()) return key.status();
  pair->key = *key;
  if (X509_check_private_key(pair->chain[0], pair->key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(flags, ": the key in ", files.key_file,
                                                   " does not belong to the certificate in ",
                                                   files.cert_file));
  }
  return pair;
}

}  // namespace

absl::Status Check(const TlsFiles& files, absl::string_view flags) {
  absl::StatusOr<std::shared_ptr<ReloadableCertificate::Pair>> pair = ReadPair(files, flags);
  if (!pair.ok()) return pair.status();
  if (!files.ca_file.empty()) {
    absl::StatusOr<std::vector<X509*>> ca = ReadCertificates(files.ca_file, flags);
    if (!ca.ok()) return ca.status();
    Free(*ca);
  }
  return absl::OkStatus();
}

absl::Status CheckMutual(const TlsFiles& files, absl::string_view prefix) {
  if (!files.enabled() && files.ca_file.empty()) return absl::OkStatus();
  if (files.ca_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "ca_file: required with ", prefix,
                                                   "cert_file (the worker plane is mutual TLS)"));
  }
  return Check(files, absl::StrCat(prefix, "cert_file/", prefix, "key_file"));
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsFiles& files,
                                                           unsigned refresh_seconds) {
  std::shared_ptr<gx::CertificateProviderInterface> provider =
      files.ca_file.empty() ? std::make_shared<gx::FileWatcherCertificateProvider>(
                                  files.key_file, files.cert_file, refresh_seconds)
                            : std::make_shared<gx::FileWatcherCertificateProvider>(
                                  files.key_file, files.cert_file, files.ca_file, refresh_seconds);
  gx::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (files.ca_file.empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return gx::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const TlsFiles& files,
                                                             bool check_host) {
  gx::TlsChannelCredentialsOptions options;
  const bool identity = !files.cert_file.empty();
  const bool roots = !files.ca_file.empty();
  if (identity && roots) {
    options.set_certificate_provider(std::make_shared<gx::FileWatcherCertificateProvider>(
        files.key_file, files.cert_file, files.ca_file, 1));
  } else if (identity) {
    options.set_certificate_provider(
        std::make_shared<gx::FileWatcherCertificateProvider>(files.key_file, files.cert_file, 1));
  } else if (roots) {
    options.set_certificate_provider(
        std::make_shared<gx::FileWatcherCertificateProvider>(files.ca_file, 1));
  }
  if (identity) options.watch_identity_key_cert_pairs();
  if (roots) options.watch_root_certs();
  options.set_verify_server_certs(true);  // the chain, always
  options.set_check_call_host(check_host);
  if (check_host) {
    options.set_certificate_verifier(std::make_shared<gx::HostNameCertificateVerifier>());
  } else {
    options.set_certificate_verifier(std::make_shared<gx::NoOpCertificateVerifier>());
  }
  return grpc::experimental::TlsCredentials(options);
}

std::string PeerCommonName(const grpc::AuthContext& context) {
  if (!context.IsPeerAuthenticated()) return "";
  std::vector<grpc::string_ref> names = context.FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (names.empty()) return "";
  return std::string(names[0].data(), names[0].size());
}

ReloadableCertificate::ReloadableCertificate(TlsFiles files, std::string flags)
    : files_(std::move(files)), flags_(std::move(flags)) {}

ReloadableCertificate::~ReloadableCertificate() = default;

absl::StatusOr<std::unique_ptr<ReloadableCertificate>> ReloadableCertificate::Load(
    const TlsFiles& files, absl::string_view flags) {
  std::unique_ptr<ReloadableCertificate> cert(new ReloadableCertificate(files, std::string(flags)));
  if (absl::Status s = cert->Reload(); !s.ok()) return s;
  return cert;
}

absl::Status ReloadableCertificate::Reload() {
  absl::StatusOr<std::shared_ptr<Pair>> pair = ReadPair(files_, flags_);
  if (!pair.ok()) return pair.status();
  absl::MutexLock lock(&mu_);
  pair_ = *std::move(pair);
  return absl::OkStatus();
}

bool ReloadableCertificate::Install(SSL_CTX& ctx) {
  if (SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION) != 1) return false;
  SSL_CTX_set_cert_cb(&ctx, &ReloadableCertificate::OnHandshake, this);
  return true;
}

int ReloadableCertificate::OnHandshake(SSL* ssl, void* arg) {
  auto* self = static_cast<ReloadableCertificate*>(arg);
  std::shared_ptr<const Pair> pair;
  {
    absl::MutexLock lock(&self->mu_);
    pair = self->pair_;
  }
  // The SSL takes references of its own; the pair may be replaced after this returns.
  if (SSL_use_certificate(ssl, pair->chain[0]) != 1 || SSL_use_PrivateKey(ssl, pair->key) != 1) {
    return 0;
  }
  STACK_OF(X509)* chain = sk_X509_new_null();
  for (size_t i = 1; i < pair->chain.size(); ++i) sk_X509_push(chain, pair->chain[i]);
  const long ok = SSL_set1_chain(ssl, chain);  // up-refs each certificate
  sk_X509_free(chain);
  return ok == 1 ? 1 : 0;
}

}  // namespace rami::tls
