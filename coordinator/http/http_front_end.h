// HttpFrontEnd: rami-coordinator's HTTP port (--http_port) — the OpenAI-compatible API
// (POST /v1/completions, /v1/chat/completions, GET /v1/models), vLLM's POST /tokenize and
// /detokenize, GET /health and GET /metrics (Prometheus). Requests go through the same
// authentication (Authorization: Bearer <key>), validation and JobRunner as the gRPC API;
// /health is open, /metrics needs an admin key unless `open_metrics`. Served by cpp-httplib with a
// thread per connection (bounded): a streamed response holds its connection's thread, so the number
// of concurrent streams is bounded by the runner's queue limit, not by a fixed pool.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "base/tls/tls.h"
#include "coordinator/api/model_front_end.h"
#include "coordinator/api/server_limits.h"
#include "coordinator/api/validated_request.h"
#include "coordinator/auth/authenticator.h"
#include "coordinator/http/openai_request.h"
#include "coordinator/http/openai_response.h"
#include "coordinator/metrics/metrics.h"
#include "coordinator/runner/job_runner.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace rami::http {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 0;                      // 0: any free port
  std::string served_model_name;     // what clients put in `model`
  size_t max_body_bytes = 16 << 20;  // larger request bodies get 413
  int max_connections = 1088;        // open connections (each holds a thread)
  // <think> … </think> split into reasoning_content (chat): "auto" = when the tokenizer has a
  // </think> token, "think" = always, "none" = never.
  std::string reasoning_parser = "auto";
  // GET /metrics without a key (its `group` labels are the workers' addresses); otherwise it
  // needs an admin key, as a Prometheus scrape's `authorization` sends. Moot without keys.
  bool open_metrics = false;
  // HTTPS with this certificate and key (TLS 1.2+) when set; plain HTTP otherwise.
  tls::TlsFiles tls;
  absl::Status Validate() const;
};

class HttpFrontEnd {
 public:
  // Everything passed must outlive the front end; `metrics` may be null.
  HttpFrontEnd(const api::ModelFrontEnd* model, const api::ServerLimits& limits,
               coordinator::JobRunner* runner, auth::Authenticator* auth, metrics::Metrics* metrics,
               HttpOptions options);
  ~HttpFrontEnd();

  // Binds and starts serving on a thread of its own; returns the bound port. With options.tls,
  // loads the certificate first (its errors name the flags).
  absl::StatusOr<int> Start();
  // HTTPS: reads the certificate and key files again (SIGHUP); new connections use them, and
  // on an error the old pair stays. OK without TLS.
  absl::Status ReloadCertificate();
  // Stops accepting, ends the open connections' requests and joins the threads.
  void Stop();

 private:
  // The caller named by the Authorization header; otherwise sends 401 (or 429 past the key's
  // rps) and returns nullopt.
  std::optional<auth::Caller> Authenticate(const httplib::Request& req, httplib::Response& res);
  void Completions(const httplib::Request& req, httplib::Response& res, bool chat);
  // The request's jobs, validated (errors with the HTTP field names); fills the options'
  // per-prompt reasoning starts and the echo texts of token-id prompts.
  absl::StatusOr<std::vector<api::ValidatedRequest>> Validate(OpenAiRequest& request,
                                                              ResponderOptions& options) const;
  void Tokenize(const httplib::Request& req, httplib::Response& res);
  void Detokenize(const httplib::Request& req, httplib::Response& res);
  void Models(httplib::Response& res);
  void Metrics(const httplib::Request& req, httplib::Response& res);

  const api::ModelFrontEnd* model_;
  api::ServerLimits limits_;
  coordinator::JobRunner* runner_;
  auth::Authenticator* auth_;
  metrics::Metrics* metrics_;
  HttpOptions options_;
  bool split_reasoning_ = false;
  std::unique_ptr<tls::ReloadableCertificate> certificate_;  // HTTPS only; used by server_
  std::unique_ptr<httplib::Server> server_;                  // created by Start()
  std::thread thread_;
};

}  // namespace rami::http
