// rami-coordinator: loads a model on a worker group and serves rami.v1.Inference (plus
// grpc.health.v1 and server reflection) until SIGTERM/SIGINT.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "base/server_process.h"
#include "coordinator/service/coordinator_config.h"
#include "coordinator/service/inference_service.h"
#include "proto/worker_credentials.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "address of the public API (port 0: any)");
ABSL_FLAG(std::string, port_file, "", "write the bound port to this file once serving");
ABSL_FLAG(std::string, workers, "",
          "static worker groups: host:port of each group's ranks, ',' between ranks, ';' "
          "between groups");
ABSL_FLAG(std::string, worker_discovery, "",
          "file:PATH (one group per line, re-read) or dns:HOST_TEMPLATE (see --tp, "
          "--worker_port, --workers_per_pod, --max_groups); instead of --workers");
ABSL_FLAG(int, tp, 1, "dns discovery: ranks per tensor-parallel group");
ABSL_FLAG(int, worker_port, 50061, "dns discovery: port of a pod's first worker");
ABSL_FLAG(int, workers_per_pod, 1, "dns discovery: workers (GPUs) per pod");
ABSL_FLAG(int, max_groups, 64, "dns discovery: most groups to look for");
ABSL_FLAG(double, discovery_interval, 5, "seconds between two looks at the discovery source");
ABSL_FLAG(std::string, coordinator_id, "",
          "lease holder name; a restarted coordinator with the same id takes its workers over "
          "at once (default: the host name)");
ABSL_FLAG(std::string, worker_auth_token_file, "",
          "file holding the workers' secret (their --auth_token_file), sent on every worker "
          "call; none: the workers' ports must be open (loopback only)");
ABSL_FLAG(double, lease_seconds, 15, "the workers' lease lapses after this long without contact");
ABSL_FLAG(double, startup_timeout, 300,
          "with --workers: seconds to wait for a group to load before giving up");
ABSL_FLAG(double, drain_timeout, 30, "on SIGTERM: seconds to let running jobs finish");
ABSL_FLAG(std::string, model_dir, "", "Hugging Face model directory, as the workers see it");
ABSL_FLAG(std::string, model_name, "", "name clients use (default: the directory's name)");
ABSL_FLAG(std::string, cache_policy, "", "dense, dms or window:S:R (default: the checkpoint's)");
ABSL_FLAG(int64_t, kv_cache_bytes, 256 << 20, "KV cache budget of each CPU rank, in bytes");
ABSL_FLAG(std::string, device, "cpu",
          "the workers' device: cpu, or cuda (cuda:0 in each worker: launch-node.sh pins one GPU "
          "per worker with CUDA_VISIBLE_DEVICES), or cuda:N");
ABSL_FLAG(std::string, dtype, "",
          "the workers' weights and compute: empty (the device's default: fp32 on cpu, bf16 on "
          "cuda), bf16 (cuda only) or fp32 (on cuda: the exactness mode)");
ABSL_FLAG(bool, enforce_eager, false,
          "cuda: launch every step's kernels eagerly instead of replaying decode steps as CUDA "
          "graphs (debugging, profiling)");
ABSL_FLAG(double, gpu_memory_utilization, 0.9,
          "cuda: share of each GPU's total memory a worker may use; its KV page pool gets what "
          "the weights and the largest step leave (vLLM's --gpu-memory-utilization)");
ABSL_FLAG(int, page_size, 16, "KV page size in tokens");
ABSL_FLAG(double, collective_timeout, 30, "collective timeout of the workers, seconds");
ABSL_FLAG(int, max_n, 256, "largest n a request may ask for");
ABSL_FLAG(int, max_tokens_default, 256, "max_tokens when a request leaves it at 0");
ABSL_FLAG(int, max_step_tokens, 2048, "prefill + decode tokens per step");
ABSL_FLAG(int, max_step_sequences, 256,
          "sequences with tokens per step (the workers reserve their step buffers for it)");
ABSL_FLAG(int, max_prefill_chunk, 512, "prompt tokens of one job per step");
ABSL_FLAG(int, queue_limit, 1024, "jobs waiting or running before RESOURCE_EXHAUSTED");
ABSL_FLAG(bool, lookahead, false, "send step t+1 before step t's results arrive");
ABSL_FLAG(bool, prefix_cache, true,
          "keep prompt prefixes (DMS snapshots) for later jobs that share them "
          "(docs/prefix-cache.md); a request may skip it");
ABSL_FLAG(double, prefix_cache_fraction, 0.5,
          "share of each worker group's KV pages the prefix cache may hold; beyond it, and "
          "under memory pressure, the least recently used prefixes are freed");
ABSL_FLAG(double, step_timeout_floor, 10,
          "seconds: a worker group's step deadline is this plus --step_timeout_factor x its "
          "measured time per token x the step's tokens; a rank that misses it is failed");
ABSL_FLAG(double, step_timeout_factor, 20, "safety factor of the step deadline");
ABSL_FLAG(double, step_timeout_first, 300,
          "seconds: the deadline of a group's first steps after a load (CUDA graph capture)");
ABSL_FLAG(double, finished_job_ttl, 600,
          "seconds GetJob still answers for a finished job (finished jobs never count against "
          "--queue_limit)");
ABSL_FLAG(int, http_port, 0,
          "HTTP port of the OpenAI-compatible API, /tokenize, /health and /metrics; 0 = off, "
          "-1 = any free port (see --http_port_file)");
ABSL_FLAG(std::string, http_host, "127.0.0.1", "address the HTTP port binds to");
ABSL_FLAG(std::string, http_port_file, "", "write the bound HTTP port to this file");
ABSL_FLAG(std::string, served_model_name, "",
          "the model's name in the HTTP API (default: --model_name, or the directory's name)");
ABSL_FLAG(std::string, reasoning_parser, "auto",
          "HTTP chat: split <think> sections into reasoning_content: auto (when the tokenizer "
          "has a </think> token), think or none");
ABSL_FLAG(std::string, api_keys_file, "",
          "API keys of the public ports (gRPC and HTTP), one JSON object a line: "
          "{\"name\", \"key\" or \"sha256\", \"admin\", \"max_jobs\", \"max_branches\", "
          "\"rps\", \"burst\"} (docs/api.md); empty = no authentication");
ABSL_FLAG(bool, open_metrics, false,
          "with --api_keys_file: serve GET /metrics without a key (else an admin key)");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain of the public ports (gRPC and HTTP): TLS only, no plaintext. "
          "Re-read on SIGHUP (HTTP) and within a second of a change (gRPC)");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, worker_tls_cert_file, "",
          "mutual TLS towards the workers: the coordinator's PEM certificate (CN "
          "rami-coordinator); with --worker_tls_key_file and --worker_tls_ca_file");
ABSL_FLAG(std::string, worker_tls_key_file, "", "the private key of --worker_tls_cert_file");
ABSL_FLAG(std::string, worker_tls_ca_file, "", "the CA bundle the workers' certificates chain to");
ABSL_FLAG(bool, require_tls, false,
          "refuse to start unless --tls_cert_file and --tls_key_file are given");
ABSL_FLAG(int64_t, max_request_bytes, 16 << 20, "largest HTTP request body (413 beyond)");

namespace {

using rami::coordinator::CoordinatorConfig;

int Fail(const std::string& message) {
  std::fprintf(stderr, "rami-coordinator: %s\n", message.c_str());
  return 1;
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == 0) return "rami-coordinator";
  return name;
}

CoordinatorConfig ConfigFromFlags() {
  CoordinatorConfig c;
  c.listen = absl::GetFlag(FLAGS_listen);
  c.port_file = absl::GetFlag(FLAGS_port_file);
  c.workers = absl::GetFlag(FLAGS_workers);
  c.worker_discovery = absl::GetFlag(FLAGS_worker_discovery);
  c.dns.tp = absl::GetFlag(FLAGS_tp);
  c.dns.port = absl::GetFlag(FLAGS_worker_port);
  c.dns.workers_per_pod = absl::GetFlag(FLAGS_workers_per_pod);
  c.dns.max_groups = absl::GetFlag(FLAGS_max_groups);
  c.discovery_interval_seconds = absl::GetFlag(FLAGS_discovery_interval);
  c.coordinator_id = absl::GetFlag(FLAGS_coordinator_id);
  c.worker_auth_token_file = absl::GetFlag(FLAGS_worker_auth_token_file);
  c.lease_seconds = absl::GetFlag(FLAGS_lease_seconds);
  c.startup_timeout_seconds = absl::GetFlag(FLAGS_startup_timeout);
  c.drain_timeout_seconds = absl::GetFlag(FLAGS_drain_timeout);
  c.model_dir = absl::GetFlag(FLAGS_model_dir);
  c.model_name = absl::GetFlag(FLAGS_model_name);
  c.cache_policy = absl::GetFlag(FLAGS_cache_policy);
  c.kv_cache_bytes = absl::GetFlag(FLAGS_kv_cache_bytes);
  c.device = absl::GetFlag(FLAGS_device);
  c.dtype = absl::GetFlag(FLAGS_dtype);
  c.enforce_eager = absl::GetFlag(FLAGS_enforce_eager);
  c.gpu_memory_utilization = absl::GetFlag(FLAGS_gpu_memory_utilization);
  c.page_size = absl::GetFlag(FLAGS_page_size);
  c.collective_timeout_seconds = absl::GetFlag(FLAGS_collective_timeout);
  c.limits.max_n = absl::GetFlag(FLAGS_max_n);
  c.limits.max_tokens_default = absl::GetFlag(FLAGS_max_tokens_default);
  c.limits.queue_limit = absl::GetFlag(FLAGS_queue_limit);
  c.scheduler.max_step_tokens = absl::GetFlag(FLAGS_max_step_tokens);
  c.scheduler.max_step_sequences = absl::GetFlag(FLAGS_max_step_sequences);
  c.scheduler.max_prefill_chunk = absl::GetFlag(FLAGS_max_prefill_chunk);
  // Room for four jobs of the largest n at once.
  c.scheduler.max_running_branches = 4 * c.limits.max_n;
  c.lookahead = absl::GetFlag(FLAGS_lookahead);
  c.scheduler.prefix_cache = absl::GetFlag(FLAGS_prefix_cache);
  c.scheduler.prefix_cache_fraction = absl::GetFlag(FLAGS_prefix_cache_fraction);
  c.finished_job_ttl_seconds = absl::GetFlag(FLAGS_finished_job_ttl);
  c.step_timeout_floor_seconds = absl::GetFlag(FLAGS_step_timeout_floor);
  c.step_timeout_factor = absl::GetFlag(FLAGS_step_timeout_factor);
  c.step_timeout_first_seconds = absl::GetFlag(FLAGS_step_timeout_first);
  c.http_port = absl::GetFlag(FLAGS_http_port);
  c.http_host = absl::GetFlag(FLAGS_http_host);
  c.http_port_file = absl::GetFlag(FLAGS_http_port_file);
  c.http.served_model_name = absl::GetFlag(FLAGS_served_model_name);
  c.http.reasoning_parser = absl::GetFlag(FLAGS_reasoning_parser);
  c.api_keys_file = absl::GetFlag(FLAGS_api_keys_file);
  c.public_tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  c.public_tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  c.require_tls = absl::GetFlag(FLAGS_require_tls);
  c.worker_tls = {.cert_file = absl::GetFlag(FLAGS_worker_tls_cert_file),
                  .key_file = absl::GetFlag(FLAGS_worker_tls_key_file),
                  .ca_file = absl::GetFlag(FLAGS_worker_tls_ca_file)};
  c.http.open_metrics = absl::GetFlag(FLAGS_open_metrics);
  c.http.max_body_bytes =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_max_request_bytes)));
  // Streams are bounded by the queue: a connection per queued job, and some for the rest.
  c.http.max_connections = c.limits.queue_limit + 64;
  return c;
}

// With a fixed list of groups, serve only once one of them has loaded (a bad model or flag
// ends the process here, with the workers' error). Returns false when SIGTERM came first.
bool WaitForWorkers(rami::coordinator::JobRunner& runner, const CoordinatorConfig& config,
                    int signals, absl::Status* status) {
  const absl::Time deadline = absl::Now() + absl::Seconds(config.startup_timeout_seconds);
  do {
    *status = runner.WaitUntilServing(
        std::min(absl::Milliseconds(200), std::max(deadline - absl::Now(), absl::ZeroDuration())));
    if (rami::TerminationRequested(signals, 0)) return false;
  } while (status->code() == absl::StatusCode::kDeadlineExceeded && absl::Now() < deadline);
  return true;
}

// grpc.health.v1 ("" and rami.v1.Inference) follows the worker groups: SERVING while one
// serves. "rami.liveness" is SERVING while the process runs (a liveness probe must not
// restart a coordinator that merely waits for workers). On SIGTERM: drain — refuse new jobs
// (and report NOT_SERVING so load balancers move away), let the running ones finish.
void ServeUntilSignal(grpc::Server& server, rami::coordinator::JobRunner& runner,
                      const CoordinatorConfig& config, int signals) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  health->SetServingStatus("rami.liveness", true);
  absl::Notification stop;
  std::atomic<bool> draining = false;
  std::thread health_thread([&] {
    do {
      health->SetServingStatus(runner.healthy() && !draining);
      health->SetServingStatus("rami.liveness", true);
    } while (!stop.WaitForNotificationWithTimeout(absl::Milliseconds(500)));
  });
  rami::WaitForTerminationSignal(signals);
  draining = true;
  health->SetServingStatus(false);
  health->SetServingStatus("rami.liveness", true);
  runner.StartDrain();
  const absl::Time drain_deadline = absl::Now() + absl::Seconds(config.drain_timeout_seconds);
  while (runner.Stats().jobs_active > 0 && absl::Now() < drain_deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  stop.Notify();
  health_thread.join();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "rami-coordinator --model_dir=DIR (--workers=H:P,H:P[;H:P,H:P...] | "
      "--worker_discovery=file:PATH|dns:TEMPLATE) [--listen=ADDR]");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil is built with its Mutex deadlock detector on: every lock then updates a
  // global lock-order graph under a global lock. Off, as in an NDEBUG Abseil (tests keep it).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const int signals = rami::CatchTerminationSignals();
  const CoordinatorConfig config = ConfigFromFlags();
  if (absl::Status s = config.Validate(); !s.ok()) return Fail(std::string(s.message()));
  absl::StatusOr<std::unique_ptr<rami::coordinator::WorkerDiscovery>> discovery =
      config.Discovery();
  if (!discovery.ok()) return Fail(std::string(discovery.status().message()));
  const bool fixed = (*discovery)->fixed();
  absl::StatusOr<rami::api::ModelFrontEnd> model =
      rami::api::ModelFrontEnd::Load(config.model_dir, config.model_name);
  if (!model.ok()) return Fail(model.status().ToString());

  rami::coordinator::RunnerConfig runner_config = config.Runner(HostName());
  if (!config.worker_auth_token_file.empty()) {
    absl::StatusOr<std::string> token =
        rami::proto::ReadTokenFile(config.worker_auth_token_file, "--worker_auth_token_file");
    if (!token.ok()) return Fail(std::string(token.status().message()));
    runner_config.worker_auth_token = std::move(*token);
  } else if (!config.worker_tls.enabled()) {
    std::fprintf(stderr,
                 "rami-coordinator: WARNING: no --worker_auth_token_file: worker calls carry no "
                 "credentials, so only workers with open (loopback, tokenless) ports accept "
                 "them\n");
  }

  rami::metrics::Metrics metrics;
  rami::coordinator::JobRunner runner(runner_config, *std::move(discovery), &*model, &metrics);
  if (fixed) {
    absl::Status s;
    if (!WaitForWorkers(runner, config, signals, &s)) return 0;  // nothing was served
    if (!s.ok()) {
      return Fail(absl::StrCat("loading the model on the workers (--startup_timeout ",
                               config.startup_timeout_seconds, " s): ", s.ToString()));
    }
  }
  absl::StatusOr<std::unique_ptr<rami::auth::Authenticator>> auth = config.Authenticator();
  if (!auth.ok()) return Fail(std::string(auth.status().message()));
  if (!(*auth)->enabled()) {
    std::fprintf(stderr,
                 "rami-coordinator: warning: no --api_keys_file: the public ports (gRPC%s) are "
                 "unauthenticated, without per-client limits; bind them to a trusted "
                 "interface\n",
                 config.http_port != 0 ? " and HTTP" : "");
  } else {
    std::printf("rami-coordinator: API keys from %s\n", config.api_keys_file.c_str());
  }
  rami::coordinator::InferenceService service(&*model, config.limits, &runner, auth->get(),
                                              &metrics);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(config.listen,
                           config.public_tls.enabled()
                               ? rami::tls::ServerCredentials(config.public_tls)
                               : grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return Fail("cannot listen on " + config.listen);
  rami::WritePortFile(config.port_file, port);
  std::printf("rami-coordinator: %s, serving rami.v1.Inference on port %d (%s%s)\n",
              model->name().c_str(), port,
              fixed ? "static worker groups" : config.worker_discovery.c_str(),
              config.public_tls.enabled() ? ", TLS" : "");
  std::fflush(stdout);

  std::unique_ptr<rami::http::HttpFrontEnd> http;
  if (config.http_port != 0) {
    http = std::make_unique<rami::http::HttpFrontEnd>(&*model, config.limits, &runner, auth->get(),
                                                      &metrics, config.Http());
    absl::StatusOr<int> http_port = http->Start();
    if (!http_port.ok()) return Fail(std::string(http_port.status().message()));
    rami::WritePortFile(config.http_port_file, *http_port);
    std::printf("rami-coordinator: OpenAI-compatible HTTP API on %s://%s:%d\n",
                config.public_tls.enabled() ? "https" : "http", config.http_host.c_str(),
                *http_port);
    std::fflush(stdout);
  }
  // SIGHUP: re-read the HTTPS certificate (gRPC's file watcher follows the files by itself).
  std::thread([reload = rami::CatchReloadSignal(), front = http.get()] {
    while (rami::TerminationRequested(reload, -1)) {
      char signal;
      [[maybe_unused]] ssize_t n = read(reload, &signal, 1);
      const absl::Status s = front != nullptr ? front->ReloadCertificate() : absl::OkStatus();
      std::fprintf(stderr, "rami-coordinator: SIGHUP: %s\n",
                   s.ok() ? "certificates reloaded" : s.ToString().c_str());
    }
  }).detach();
  ServeUntilSignal(*server, runner, config, signals);
  if (http != nullptr) http->Stop();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  server->Wait();
  std::printf("rami-coordinator: stopped\n");
  return 0;
}
