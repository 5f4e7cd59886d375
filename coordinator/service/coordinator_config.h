// CoordinatorConfig: everything rami-coordinator's flags say, as one struct that main.cc
// fills and Validate() checks before anything starts (each error names the flag and its
// range); then turned into the limits, the runner's config and the discovery source.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/tls/tls.h"
#include "coordinator/api/server_limits.h"
#include "coordinator/auth/authenticator.h"
#include "coordinator/groups/worker_discovery.h"
#include "coordinator/http/http_front_end.h"
#include "coordinator/runner/job_runner.h"

namespace rami::coordinator {

struct CoordinatorConfig {
  std::string listen = "127.0.0.1:50051";
  std::string port_file;
  // Exactly one of: static groups ("h:p,h:p;h:p") or a discovery source (file:, dns:).
  std::string workers;
  std::string worker_discovery;
  DnsDiscoveryOptions dns;  // host_template comes from worker_discovery
  double discovery_interval_seconds = 5;
  std::string coordinator_id;  // "" = the host name
  // The workers' secret (their --auth_token_file); main.cc reads it into the runner's config.
  // "" = calls carry no credentials (workers with open loopback ports only).
  std::string worker_auth_token_file;
  // Mutual TLS on the worker plane: the coordinator's certificate (CN rami-coordinator), its
  // key and the CA the workers' certificates chain to. Empty: plaintext.
  tls::TlsFiles worker_tls;
  double lease_seconds = 15;
  double startup_timeout_seconds = 300;
  double drain_timeout_seconds = 30;
  // The model and how the workers load it.
  std::string model_dir;
  std::string model_name;
  std::string cache_policy;
  int64_t kv_cache_bytes = 256 << 20;
  std::string device = "cpu";
  std::string dtype;
  bool enforce_eager = false;
  double gpu_memory_utilization = 0.9;
  int page_size = 16;
  double collective_timeout_seconds = 30;
  // Requests and the scheduler.
  api::ServerLimits limits;
  SchedulerConfig scheduler;
  bool lookahead = false;
  double finished_job_ttl_seconds = 600;  // GetJob answers for a finished job this long
  // A step's deadline: floor + factor × the group's time per token × the step's tokens; the
  // first steps after a load get step_timeout_first.
  double step_timeout_floor_seconds = 10;
  double step_timeout_factor = 20;
  double step_timeout_first_seconds = 300;
  // The HTTP port (OpenAI API, /metrics): http_port 0 = off, -1 = any free port.
  int http_port = 0;
  std::string http_host = "127.0.0.1";
  std::string http_port_file;
  http::HttpOptions http;  // its port and host come from the two fields above
  // The public ports' API keys (auth/api_keys.h); "" = no keys: one anonymous owner, admin.
  std::string api_keys_file;
  // TLS on the public ports (gRPC and HTTP): certificate and key files; require_tls refuses to
  // start without them (a production config that must never serve plaintext).
  tls::TlsFiles public_tls;
  bool require_tls = false;

  // INVALID_ARGUMENT naming the first flag out of range (as --flag).
  absl::Status Validate() const;

  // The rest need a config that passed Validate().
  // The runner's config; `host_name` is the lease holder when coordinator_id is "".
  RunnerConfig Runner(const std::string& host_name) const;
  absl::StatusOr<std::unique_ptr<WorkerDiscovery>> Discovery() const;
  // The HTTP front end's options (with http_port != 0).
  http::HttpOptions Http() const;
  // The public ports' authenticator: api_keys_file's keys (read again: errors name the flag),
  // or none.
  absl::StatusOr<std::unique_ptr<auth::Authenticator>> Authenticator() const;
};

}  // namespace rami::coordinator
