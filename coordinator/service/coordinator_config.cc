// CoordinatorConfig: flag checks, and the structs the coordinator's parts take.
#include "coordinator/service/coordinator_config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/device.h"
#include "base/status_macros.h"

namespace rami::coordinator {
namespace {

// "--flag: expected LO…HI, found V" unless lo <= value <= hi (NaN is out of range).
absl::Status InRange(const char* flag, double value, double lo, double hi) {
  if (value >= lo && value <= hi) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": expected ", lo, "…", hi, ", found ", value));
}

// The parts' own checks name their field ("device: …", "max_n: …"); as flags: "--device: …".
absl::Status AsFlag(const absl::Status& s) {
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat("--", s.message()));
}

}  // namespace

absl::Status CoordinatorConfig::Validate() const {
  if (workers.empty() == worker_discovery.empty()) {
    return absl::InvalidArgumentError(
        "exactly one of --workers and --worker_discovery is required");
  }
  if (model_dir.empty()) return absl::InvalidArgumentError("--model_dir is required");
  if (listen.empty()) return absl::InvalidArgumentError("--listen is required");
  RAMI_RETURN_IF_ERROR(InRange("discovery_interval", discovery_interval_seconds, 0.05, 3600));
  RAMI_RETURN_IF_ERROR(InRange("lease_seconds", lease_seconds, 1, 3600));
  RAMI_RETURN_IF_ERROR(InRange("startup_timeout", startup_timeout_seconds, 0.1, 86400));
  RAMI_RETURN_IF_ERROR(InRange("drain_timeout", drain_timeout_seconds, 0, 86400));
  RAMI_RETURN_IF_ERROR(InRange("collective_timeout", collective_timeout_seconds, 0.1, 3600));
  RAMI_RETURN_IF_ERROR(InRange("page_size", page_size, 1, 1024));
  RAMI_RETURN_IF_ERROR(InRange("finished_job_ttl", finished_job_ttl_seconds, 0, 7 * 86400));
  RAMI_RETURN_IF_ERROR(InRange("step_timeout_floor", step_timeout_floor_seconds, 0.1, 3600));
  RAMI_RETURN_IF_ERROR(InRange("step_timeout_factor", step_timeout_factor, 1, 1000));
  RAMI_RETURN_IF_ERROR(InRange("step_timeout_first", step_timeout_first_seconds, 1, 86400));
  RAMI_RETURN_IF_ERROR(InRange("kv_cache_bytes", static_cast<double>(kv_cache_bytes), 1,
                               static_cast<double>(int64_t{1} << 50)));
  if (!(gpu_memory_utilization > 0 && gpu_memory_utilization <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--gpu_memory_utilization: expected (0, 1], found ", gpu_memory_utilization));
  }
  const absl::StatusOr<Device> d = ParseDevice(device);
  if (!d.ok()) return AsFlag(d.status());
  const absl::StatusOr<ComputeDType> t = ParseComputeDType(dtype);
  if (!t.ok()) return AsFlag(t.status());
  RAMI_RETURN_IF_ERROR(AsFlag(ResolveComputeDType(*d, *t).status()));
  RAMI_RETURN_IF_ERROR(AsFlag(limits.Validate()));
  RAMI_RETURN_IF_ERROR(AsFlag(scheduler.Validate()));
  RAMI_RETURN_IF_ERROR(InRange("http_port", http_port, -1, 65535));
  if (http_port != 0) RAMI_RETURN_IF_ERROR(AsFlag(Http().Validate()));
  RAMI_RETURN_IF_ERROR(Authenticator().status());
  RAMI_RETURN_IF_ERROR(tls::CheckMutual(worker_tls, "--worker_tls_"));
  if (public_tls.enabled()) {
    RAMI_RETURN_IF_ERROR(tls::Check(public_tls, "--tls_cert_file/--tls_key_file"));
  } else if (require_tls) {
    return absl::InvalidArgumentError(
        "--require_tls: the public ports would serve plaintext; give --tls_cert_file and "
        "--tls_key_file");
  }
  return Discovery().status();  // its errors name --workers or --worker_discovery
}

RunnerConfig CoordinatorConfig::Runner(const std::string& host_name) const {
  RunnerConfig config;
  config.scheduler = scheduler;
  config.queue_limit = limits.queue_limit;
  config.lookahead = lookahead;
  config.load.model_dir = model_dir;
  config.load.cache_policy = cache_policy;
  config.load.page_size = page_size;
  config.load.kv_cache_bytes = kv_cache_bytes;
  config.load.collective_timeout_seconds = collective_timeout_seconds;
  config.load.gpu_memory_utilization = gpu_memory_utilization;
  config.load.max_step_tokens = scheduler.max_step_tokens;
  config.load.max_step_sequences =
      std::min(scheduler.max_step_sequences, scheduler.max_step_tokens);
  config.load.device = *ParseDevice(device);
  config.load.dtype = *ParseComputeDType(dtype);
  config.load.enforce_eager = enforce_eager;
  config.load.lease_seconds = lease_seconds;
  config.coordinator_id = coordinator_id.empty() ? host_name : coordinator_id;
  config.worker_tls = worker_tls;
  config.discovery_interval = absl::Seconds(discovery_interval_seconds);
  config.finished_job_ttl = absl::Seconds(finished_job_ttl_seconds);
  config.step_deadlines.floor = absl::Seconds(step_timeout_floor_seconds);
  config.step_deadlines.factor = step_timeout_factor;
  config.step_deadlines.first_steps = absl::Seconds(step_timeout_first_seconds);
  return config;
}

http::HttpOptions CoordinatorConfig::Http() const {
  http::HttpOptions options = http;
  options.host = http_host;
  options.port = http_port < 0 ? 0 : http_port;
  options.tls = public_tls;
  return options;
}

absl::StatusOr<std::unique_ptr<auth::Authenticator>> CoordinatorConfig::Authenticator() const {
  if (api_keys_file.empty()) return std::make_unique<auth::Authenticator>();
  absl::StatusOr<std::vector<auth::ApiKey>> keys = auth::LoadApiKeys(api_keys_file);
  if (!keys.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--api_keys_file: ", keys.status().message()));
  }
  return std::make_unique<auth::Authenticator>(*std::move(keys));
}

absl::StatusOr<std::unique_ptr<WorkerDiscovery>> CoordinatorConfig::Discovery() const {
  return MakeDiscovery(workers.empty() ? worker_discovery : "static:" + workers, dns);
}

}  // namespace rami::coordinator
