// Token files, random tokens and the bearer-token channel (a client interceptor that adds the
// authorization metadata to every call, unary and streaming alike).
#include "proto/worker_credentials.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace rami::proto {

namespace {

class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string* metadata) : metadata_(metadata) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({kAuthorizationKey, *metadata_});
    }
    methods->Proceed();
  }

 private:
  const std::string* metadata_;  // owned by the factory, which the channel keeps alive
};

class BearerInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(const std::string& token)
      : metadata_(absl::StrCat(kBearerPrefix, token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerInterceptor(&metadata_);
  }

 private:
  const std::string metadata_;
};

}  // namespace

absl::Status ValidateToken(absl::string_view token, absl::string_view what) {
  if (token.size() < kMinTokenChars || token.size() > kMaxTokenChars) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected ", kMinTokenChars, "…",
                                                   kMaxTokenChars, " characters, found ",
                                                   token.size()));
  }
  for (const char c : token) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": expected printable ASCII without spaces, found byte ",
                       static_cast<int>(static_cast<unsigned char>(c))));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read \"", path, "\": ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  const std::string token(absl::StripAsciiWhitespace(text.str()));
  if (absl::Status s = ValidateToken(token, absl::StrCat(flag, " \"", path, "\"")); !s.ok()) {
    return s;
  }
  return token;
}

std::string NewRandomToken() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
    // EINTR: again. getrandom blocks (rather than fails) until the pool is ready.
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

std::shared_ptr<grpc::Channel> NewWorkerChannel(const std::string& address,
                                                const std::string& bearer_token,
                                                const tls::TlsFiles& tls) {
  const std::shared_ptr<grpc::ChannelCredentials> credentials =
      tls.enabled() ? tls::ChannelCredentials(tls, /*check_host=*/false)
                    : grpc::InsecureChannelCredentials();
  if (bearer_token.empty()) return grpc::CreateChannel(address, credentials);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<BearerInterceptorFactory>(bearer_token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, credentials, grpc::ChannelArguments(), std::move(factories));
}

}  // namespace rami::proto
