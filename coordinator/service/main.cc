// rami-coordinator: loads a model on a worker group and serves rami.v1.Inference (plus
// grpc.health.v1 and server reflection) until SIGTERM/SIGINT.
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
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "base/server_process.h"
#include "coordinator/service/inference_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "address of the public API (port 0: any)");
ABSL_FLAG(std::string, port_file, "", "write the bound port to this file once serving");
ABSL_FLAG(std::string, workers, "", "host:port of the ranks of the worker group, comma-separated");
ABSL_FLAG(std::string, model_dir, "", "Hugging Face model directory, as the workers see it");
ABSL_FLAG(std::string, model_name, "", "name clients use (default: the directory's name)");
ABSL_FLAG(std::string, cache_policy, "", "dense, dms or window:S:R (default: the checkpoint's)");
ABSL_FLAG(int64_t, kv_cache_bytes, 256 << 20, "KV cache budget of each rank, in bytes");
ABSL_FLAG(int, page_size, 16, "KV page size in tokens");
ABSL_FLAG(double, collective_timeout, 30, "collective timeout of the workers, seconds");
ABSL_FLAG(int, max_n, 256, "largest n a request may ask for");
ABSL_FLAG(int, max_tokens_default, 256, "max_tokens when a request leaves it at 0");
ABSL_FLAG(int, max_step_tokens, 2048, "prefill + decode tokens per step");
ABSL_FLAG(int, max_prefill_chunk, 512, "prompt tokens of one job per step");
ABSL_FLAG(int, queue_limit, 1024, "jobs waiting or running before RESOURCE_EXHAUSTED");
ABSL_FLAG(bool, lookahead, false, "send step t+1 before step t's results arrive");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "rami-coordinator: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "rami-coordinator --workers=HOST:PORT[,HOST:PORT...] --model_dir=DIR [--listen=ADDR]");
  absl::ParseCommandLine(argc, argv);
  const sigset_t signals = rami::BlockTerminationSignals();

  const std::vector<std::string> workers =
      absl::StrSplit(absl::GetFlag(FLAGS_workers), ',', absl::SkipWhitespace());
  if (workers.empty()) return Fail("--workers: at least one worker address");
  const std::string model_dir = absl::GetFlag(FLAGS_model_dir);
  if (model_dir.empty()) return Fail("--model_dir is required");

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
  config.scheduler.max_prefill_chunk = absl::GetFlag(FLAGS_max_prefill_chunk);
  config.scheduler.max_running_branches = 4 * limits.max_n;
  config.queue_limit = limits.queue_limit;
  config.lookahead = absl::GetFlag(FLAGS_lookahead);
  if (absl::Status s = config.scheduler.Validate(); !s.ok()) return Fail(s.ToString());

  rami::coordinator::WorkerGroupClient group(workers);
  rami::coordinator::GroupLoadOptions load_options;
  load_options.model_dir = model_dir;
  load_options.cache_policy = absl::GetFlag(FLAGS_cache_policy);
  load_options.page_size = absl::GetFlag(FLAGS_page_size);
  load_options.kv_cache_bytes = absl::GetFlag(FLAGS_kv_cache_bytes);
  load_options.collective_timeout_seconds = absl::GetFlag(FLAGS_collective_timeout);
  load_options.group_id =
      absl::StrCat("coordinator-", getpid(), "-", absl::ToUnixMillis(absl::Now()));
  absl::StatusOr<rami::worker::v1::LoadShardResponse> load = group.Load(load_options);
  if (!load.ok())
    return Fail(absl::StrCat("loading the model on the workers: ", load.status().ToString()));
  std::printf("rami-coordinator: %s on %zu rank(s): %lld pages of %d tokens per rank, policy %s\n",
              model->name().c_str(), workers.size(), static_cast<long long>(load->num_pages()),
              load->page_size(), load->cache_policy().c_str());

  rami::coordinator::JobRunner runner(config, &group, *load, &*model);
  rami::coordinator::InferenceService service(&*model, limits, &runner, *load, 1);
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
  std::printf("rami-coordinator: serving rami.v1.Inference on port %d\n", port);
  std::fflush(stdout);

  // grpc.health.v1 follows the worker group: NOT_SERVING once it has failed.
  absl::Notification stop;
  std::thread health([&] {
    while (!stop.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      server->GetHealthCheckService()->SetServingStatus(runner.healthy());
    }
  });
  rami::WaitForTerminationSignal(signals);
  stop.Notify();
  health.join();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  server->Wait();
  std::printf("rami-coordinator: stopped\n");
  return 0;
}
