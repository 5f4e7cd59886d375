// HttpFrontEnd: the server, its thread per connection, and the small endpoints. The OpenAI
// completion endpoints are in completions.cc.
#include "coordinator/http/http_front_end.h"

#include <httplib.h>
#include <sys/socket.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "coordinator/api/request_validation.h"
#include "coordinator/http/http_util.h"
#include "nlohmann/json.hpp"

namespace rami::http {
namespace {

using json = nlohmann::json;

// cpp-httplib's TaskQueue with a thread per connection, at most `max` at once (then accept
// waits): a long server-sent-event stream must not take a slot of a small fixed pool.
class ThreadPerConnection : public httplib::TaskQueue {
 public:
  explicit ThreadPerConnection(int max) : max_(max) {}

  void enqueue(std::function<void()> fn) override {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ThreadPerConnection* q) { return q->active_ < q->max_; }, this));
    ++active_;
    std::thread([this, fn = std::move(fn)] {
      fn();
      absl::MutexLock lock(&mu_);
      --active_;
    }).detach();
  }

  // httplib calls it once it stops accepting: every connection's thread ends before the queue
  // is deleted.
  void shutdown() override {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* active) { return *active == 0; }, &active_));
  }

 private:
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  const int max_;
};

}  // namespace

absl::Status HttpOptions::Validate() const {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("http_port: expected 0…65535, found ", port));
  }
  if (reasoning_parser != "auto" && reasoning_parser != "think" && reasoning_parser != "none") {
    return absl::InvalidArgumentError(absl::StrCat(
        "reasoning_parser: expected auto, think or none, found \"", reasoning_parser, "\""));
  }
  if (max_body_bytes < 1024) return absl::InvalidArgumentError("http max_body_bytes: >= 1024");
  if (max_connections < 1) return absl::InvalidArgumentError("http max_connections: >= 1");
  return absl::OkStatus();
}

HttpFrontEnd::HttpFrontEnd(const api::ModelFrontEnd* model, const api::ServerLimits& limits,
                           coordinator::JobRunner* runner, auth::Authenticator* auth,
                           metrics::Metrics* metrics, HttpOptions options)
    : model_(model),
      limits_(limits),
      runner_(runner),
      auth_(auth),
      metrics_(metrics),
      options_(std::move(options)) {
  if (options_.served_model_name.empty()) options_.served_model_name = model_->name();
  split_reasoning_ = options_.reasoning_parser == "think" ||
                     (options_.reasoning_parser == "auto" && model_->tokenizer() != nullptr &&
                      model_->tokenizer()->TokenToId("</think>") >= 0);
}

HttpFrontEnd::~HttpFrontEnd() { Stop(); }

std::optional<auth::Caller> HttpFrontEnd::Authenticate(const httplib::Request& req,
                                                       httplib::Response& res) {
  absl::StatusOr<auth::Caller> caller = auth_->Authenticate(req.get_header_value("Authorization"));
  if (caller.ok()) return *std::move(caller);
  if (caller.status().code() == absl::StatusCode::kUnauthenticated) {
    res.set_header("WWW-Authenticate", "Bearer");
  }
  SendError(res, caller.status());
  return std::nullopt;
}

absl::StatusOr<int> HttpFrontEnd::Start() {
  if (options_.tls.enabled()) {
    absl::StatusOr<std::unique_ptr<tls::ReloadableCertificate>> cert =
        tls::ReloadableCertificate::Load(options_.tls, "--tls_cert_file/--tls_key_file");
    if (!cert.ok()) return cert.status();
    certificate_ = *std::move(cert);
    auto https = std::make_unique<httplib::SSLServer>(
        [this](SSL_CTX& ctx) { return certificate_->Install(ctx); });
    if (!https->is_valid()) return absl::InternalError("HTTPS: cannot set up the TLS context");
    server_ = std::move(https);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& s = *server_;
  const int max_connections = options_.max_connections;
  s.new_task_queue = [max_connections] { return new ThreadPerConnection(max_connections); };
  s.set_payload_max_length(options_.max_body_bytes);
  s.set_read_timeout(30, 0);
  s.set_write_timeout(30, 0);
  // Every route but /health and /metrics: a known key first.
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Completions(req, res, /*chat=*/false);
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    Completions(req, res, /*chat=*/true);
  });
  s.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (Authenticate(req, res)) Tokenize(req, res);
  });
  s.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (Authenticate(req, res)) Detokenize(req, res);
  });
  s.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (Authenticate(req, res)) Models(res);
  });
  s.Get("/metrics",
        [this](const httplib::Request& req, httplib::Response& res) { Metrics(req, res); });
  s.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool healthy = runner_->healthy();
    res.status = healthy ? 200 : 503;
    res.set_content(healthy ? "ok\n" : "no worker group serves\n", "text/plain");
  });
  // Bodies over the limit, unknown paths: OpenAI's error JSON rather than an empty page.
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const absl::Status status =
        res.status == 404
            ? absl::NotFoundError(absl::StrCat("no route ", req.method, " ", req.path))
        : res.status == 413 ? absl::InvalidArgumentError("the request body is too large")
                            : absl::UnknownError(absl::StrCat("HTTP ", res.status));
    res.set_content(ErrorJson(status).dump(), "application/json");
  });
  // cpp-httplib listens with a backlog of 5 (compiled into Debian's library): a burst of new
  // connections while the accept thread is slow overflows it, and each dropped SYN costs its
  // client a 1 s retransmission. The listening socket is listened on again with the system's
  // limit (Linux raises the backlog of a listening socket that way).
  int listening = -1;
  s.set_socket_options([&listening](socket_t sock) {
    httplib::default_socket_options(sock);
    listening = sock;  // the last socket made is the one bound
  });
  const int port = options_.port == 0
                       ? s.bind_to_any_port(options_.host)
                       : (s.bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.host, ":", options_.port, " (HTTP)"));
  }
  if (listening >= 0) ::listen(listening, SOMAXCONN);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return port;
}

absl::Status HttpFrontEnd::ReloadCertificate() {
  return certificate_ == nullptr ? absl::OkStatus() : certificate_->Reload();
}

void HttpFrontEnd::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

void HttpFrontEnd::Models(httplib::Response& res) {
  const json models = {
      {"object", "list"},
      {"data", json::array({{{"id", options_.served_model_name},
                             {"object", "model"},
                             {"created", absl::ToUnixSeconds(absl::Now())},
                             {"owned_by", "rami"},
                             {"max_model_len", limits_.EffectiveContext(model_->max_context())},
                             {"cache_policy", runner_->cache_policy()}}})}};
  res.set_content(models.dump(), "application/json");
}

void HttpFrontEnd::Metrics(const httplib::Request& req, httplib::Response& res) {
  if (!options_.open_metrics) {
    const std::optional<auth::Caller> caller = Authenticate(req, res);
    if (!caller.has_value()) return;
    if (!caller->admin) {
      return SendError(res, absl::PermissionDeniedError(absl::StrCat(
                                "api key \"", caller->name, "\": /metrics needs an admin key")));
    }
  }
  if (metrics_ == nullptr) {
    res.status = 404;
    return;
  }
  res.set_content(metrics_->Render(runner_->MetricsSnapshot()),
                  "text/plain; version=0.0.4; charset=utf-8");
}

void HttpFrontEnd::Tokenize(const httplib::Request& req, httplib::Response& res) {
  const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return SendError(res, absl::InvalidArgumentError("the request body is not a JSON object"));
  }
  rami::v1::TokenizeRequest t;
  for (const auto& [key, value] : body.items()) {
    if (key == "model" && value.is_string()) {
      if (value.get<std::string>() != options_.served_model_name) {
        return SendError(
            res, absl::NotFoundError(absl::StrCat(
                     "The model `", value.get<std::string>().substr(0, 256), "` does not exist")));
      }
    } else if (key == "prompt" && value.is_string()) {
      t.set_prompt(value.get<std::string>());
    } else if (key == "messages" || key == "chat_template_kwargs") {
      continue;  // below, through the chat request reader
    } else if (key == "add_special_tokens" && value == true) {
      continue;  // rami encodes prompts as GenerateRequest.prompt does: with them
    } else {
      return SendError(res, absl::InvalidArgumentError(absl::StrCat(
                                key, ": not supported by /tokenize (prompt or messages, model)")));
    }
  }
  if (body.contains("messages")) {
    rami::v1::GenerateRequest chat;
    if (absl::Status s = ReadChatMessages(body, chat); !s.ok()) return SendError(res, s);
    *t.mutable_messages() = chat.messages();
    *t.mutable_chat_template_kwargs() = chat.chat_template_kwargs();
  }
  absl::StatusOr<std::vector<int32_t>> ids = api::Tokenize(t, *model_);
  if (!ids.ok()) return SendError(res, ids.status());
  const json out = {{"count", ids->size()},
                    {"max_model_len", limits_.EffectiveContext(model_->max_context())},
                    {"tokens", *ids}};
  res.set_content(out.dump(), "application/json");
}

void HttpFrontEnd::Detokenize(const httplib::Request& req, httplib::Response& res) {
  const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object() || !body.contains("tokens") ||
      !body["tokens"].is_array()) {
    return SendError(res, absl::InvalidArgumentError("tokens: expected an array of token ids"));
  }
  rami::v1::DetokenizeRequest d;
  for (size_t i = 0; i < body["tokens"].size(); ++i) {
    const json& id = body["tokens"][i];
    if (!id.is_number_integer() || (id.is_number_unsigned() && id.get<uint64_t>() > INT32_MAX) ||
        id.get<int64_t>() < INT32_MIN || id.get<int64_t>() > INT32_MAX) {
      return SendError(
          res, absl::InvalidArgumentError(absl::StrCat("tokens[", i, "]: expected a token id")));
    }
    d.add_token_ids(id.get<int32_t>());
  }
  absl::StatusOr<std::string> text = api::Detokenize(d, *model_);
  if (!text.ok()) return SendError(res, text.status());
  res.set_content(json({{"prompt", *text}}).dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

}  // namespace rami::http
