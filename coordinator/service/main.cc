// rami-coordinator: loads a model on a worker group and serves rami.v1.Inference (plus
// grpc.health.v1 and server reflection) until SIGTERM/SIGINT.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "base/server_process.h"
#include "coordinator/service/inference_service.h"
#include "coordinator/service/worker_discovery.h"

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

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "rami-coordinator: %s\n", message.c_str());
  return 1;
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == 0) return "rami-coordinator";
  return name;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "rami-coordinator --model_dir=DIR (--workers=H:P,H:P[;H:P,H:P...] | "
      "--worker_discovery=file:PATH|dns:TEMPLATE) [--listen=ADDR]");
  absl::ParseCommandLine(argc, argv);
  const int signals = rami::CatchTerminationSignals();

  const std::string workers = absl::GetFlag(FLAGS_workers);
  const std::string discovery_flag = absl::GetFlag(FLAGS_worker_discovery);
  if (workers.empty() == discovery_flag.empty()) {
    return Fail("exactly one of --workers and --worker_discovery is required");
  }
  rami::coordinator::DnsDiscoveryOptions dns;
  dns.tp = absl::GetFlag(FLAGS_tp);
  dns.port = absl::GetFlag(FLAGS_worker_port);
  dns.workers_per_pod = absl::GetFlag(FLAGS_workers_per_pod);
  dns.max_groups = absl::GetFlag(FLAGS_max_groups);
  absl::StatusOr<std::unique_ptr<rami::coordinator::WorkerDiscovery>> discovery =
      rami::coordinator::MakeDiscovery(workers.empty() ? discovery_flag : "static:" + workers, dns);
  if (!discovery.ok()) return Fail(discovery.status().ToString());
  const bool fixed = (*discovery)->fixed();
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  if (model_dir.empty()) return Fail("--model_dir is required");
  const double lease_seconds = absl::GetFlag(FLAGS_lease_seconds);
  if (!(lease_seconds >= 1 && lease_seconds <= 3600)) {
    return Fail(absl::StrCat("--lease_seconds: expected 1…3600, found ", lease_seconds));
  }
  const double interval = absl::GetFlag(FLAGS_discovery_interval);
  if (!(interval >= 0.05 && interval <= 3600)) {
    return Fail(absl::StrCat("--discovery_interval: expected 0.05…3600, found ", interval));
  }
  const absl::StatusOr<rami::Device> device = rami::ParseDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) return Fail(absl::StrCat("--", device.status().message()));
  const absl::StatusOr<rami::ComputeDType> dtype =
      rami::ParseComputeDType(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return Fail(absl::StrCat("--", dtype.status().message()));
  if (absl::Status s = rami::ResolveComputeDType(*device, *dtype).status(); !s.ok()) {
    return Fail(absl::StrCat("--", s.message(), " (--device)"));
  }
  const double fraction = absl::GetFlag(FLAGS_gpu_memory_utilization);
  if (!(fraction > 0 && fraction <= 1)) {
    return Fail(absl::StrCat("--gpu_memory_utilization: expected (0, 1], found ", fraction));
  }

  absl::StatusOr<rami::api::ModelFrontEnd> model =
      rami::api::ModelFrontEnd::Load(model_dir, absl::GetFlag(FLAGS_model_name));
  if (!model.ok()) return Fail(model.status().ToString());
  rami::api::ServerLimits limits;
  limits.max_n = absl::GetFlag(FLAGS_max_n);
  limits.max_tokens_default = absl::GetFlag(FLAGS_max_tokens_default);
  limits.queue_limit = absl::GetFlag(FLAGS_queue_limit);
  if (absl::Status s = limits.Validate(); !s.ok()) return Fail(s.ToString());
  rami::coordinator::RunnerConfig config;
  config.scheduler.max_step_tokens = absl::GetFlag(FLAGS_max_step_tokens);
  config.scheduler.max_step_sequences = absl::GetFlag(FLAGS_max_step_sequences);
  config.scheduler.max_prefill_chunk = absl::GetFlag(FLAGS_max_prefill_chunk);
  config.scheduler.max_running_branches = 4 * limits.max_n;
  config.queue_limit = limits.queue_limit;
  config.lookahead = absl::GetFlag(FLAGS_lookahead);
  if (absl::Status s = config.scheduler.Validate(); !s.ok()) return Fail(s.ToString());
  config.load.model_dir = model_dir;
  config.load.cache_policy = absl::GetFlag(FLAGS_cache_policy);
  config.load.page_size = absl::GetFlag(FLAGS_page_size);
  config.load.kv_cache_bytes = absl::GetFlag(FLAGS_kv_cache_bytes);
  config.load.collective_timeout_seconds = absl::GetFlag(FLAGS_collective_timeout);
  config.load.gpu_memory_utilization = fraction;
  config.load.max_step_tokens = config.scheduler.max_step_tokens;
  config.load.max_step_sequences =
      std::min(config.scheduler.max_step_sequences, config.scheduler.max_step_tokens);
  config.load.device = *device;
  config.load.dtype = *dtype;
  config.load.enforce_eager = absl::GetFlag(FLAGS_enforce_eager);
  config.load.lease_seconds = lease_seconds;
  config.coordinator_id = absl::GetFlag(FLAGS_coordinator_id);
  if (config.coordinator_id.empty()) config.coordinator_id = HostName();
  config.discovery_interval = absl::Seconds(interval);

  rami::coordinator::JobRunner runner(config, *std::move(discovery), &*model);
  if (fixed) {
    // A fixed list of groups: serve only once one of them has loaded (a bad model or flag
    // ends the process here, with the workers' error).
    // SIGTERM meanwhile ends the wait (exit 0: nothing was served).
    const absl::Time deadline = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_startup_timeout));
    absl::Status s;
    do {
      s = runner.WaitUntilServing(std::min(absl::Milliseconds(200),
                                           std::max(deadline - absl::Now(), absl::ZeroDuration())));
      if (rami::TerminationRequested(signals, 0)) return 0;
    } while (s.code() == absl::StatusCode::kDeadlineExceeded && absl::Now() < deadline);
    if (!s.ok()) {
      return Fail(absl::StrCat("loading the model on the workers (--startup_timeout ",
                               absl::GetFlag(FLAGS_startup_timeout), " s): ", s.ToString()));
    }
  }
  rami::coordinator::InferenceService service(&*model, limits, &runner);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0)
    return Fail("cannot listen on " + absl::GetFlag(FLAGS_listen));
  rami::WritePortFile(absl::GetFlag(FLAGS_port_file), port);
  std::printf("rami-coordinator: %s, serving rami.v1.Inference on port %d (%s)\n",
              model->name().c_str(), port, fixed ? "static worker groups" : discovery_flag.c_str());
  std::fflush(stdout);

  // grpc.health.v1 ("" and rami.v1.Inference) follows the worker groups: SERVING while one
  // serves. "rami.liveness" is SERVING while the process runs (a liveness probe must not
  // restart a coordinator that merely waits for workers).
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus("rami.liveness", true);
  absl::Notification stop;
  std::atomic<bool> draining = false;
  std::thread health_thread([&] {
    do {
      const bool serving = runner.healthy() && !draining;
      health->SetServingStatus(serving);
      health->SetServingStatus("rami.liveness", true);
    } while (!stop.WaitForNotificationWithTimeout(absl::Milliseconds(500)));
  });
  rami::WaitForTerminationSignal(signals);
  // Drain: refuse new jobs (and report NOT_SERVING so load balancers move away), let the
  // running ones finish, then stop.
  draining = true;
  health->SetServingStatus(false);
  health->SetServingStatus("rami.liveness", true);
  runner.StartDrain();
  const absl::Time drain_deadline = absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_drain_timeout));
  while (runner.Stats().jobs_active > 0 && absl::Now() < drain_deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  stop.Notify();
  health_thread.join();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  server->Wait();
  std::printf("rami-coordinator: stopped\n");
  return 0;
}
