// rami-worker: one tensor-parallel rank. Serves rami.worker.v1.Worker (and grpc.health.v1)
// until a Shutdown RPC or SIGTERM/SIGINT, then exits 0 — within 2 s, even when a step is
// blocked in a collective on a peer that died or stopped (that step is left behind). Its port
// obeys only its coordinator (--auth_token_file) and its group's peers; models load only from
// --model_roots.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "base/server_process.h"
#include "proto/worker_credentials.h"
#include "worker/service/worker_auth.h"
#include "worker/service/worker_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "address to serve on (port 0: pick a free one)");
ABSL_FLAG(std::string, port_file, "", "write the bound port to this file once serving");
ABSL_FLAG(std::string, auth_token_file, "",
          "file holding the coordinator's secret (the coordinator's --worker_auth_token_file); "
          "without it the port is open to every local process and must listen on loopback");
ABSL_FLAG(std::string, tls_cert_file, "",
          "mutual TLS: this worker's PEM certificate (CN rami-worker); with --tls_key_file and "
          "--tls_ca_file the port serves TLS only and takes callers whose certificates chain "
          "to the CA: CN rami-coordinator (control) and rami-worker (group peers)");
ABSL_FLAG(std::string, tls_key_file, "", "mutual TLS: the private key of --tls_cert_file");
ABSL_FLAG(std::string, tls_ca_file, "",
          "mutual TLS: the deployment's CA bundle (callers' and peers' certificates)");
ABSL_FLAG(std::string, model_roots, "",
          "comma-separated directories LoadShard may read models from (none: no load)");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "rami-worker: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "rami-worker --listen=HOST:PORT --auth_token_file=PATH --model_roots=DIR[,DIR...] "
      "[--port_file=PATH]");
  absl::ParseCommandLine(argc, argv);
  const std::string listen = absl::GetFlag(FLAGS_listen);
  rami::service::WorkerServiceOptions options;
  options.tls = {.cert_file = absl::GetFlag(FLAGS_tls_cert_file),
                 .key_file = absl::GetFlag(FLAGS_tls_key_file),
                 .ca_file = absl::GetFlag(FLAGS_tls_ca_file)};
  if (const absl::Status files = rami::tls::CheckMutual(options.tls, "--tls_"); !files.ok()) {
    return Fail(std::string(files.message()));
  }
  if (const std::string path = absl::GetFlag(FLAGS_auth_token_file); !path.empty()) {
    absl::StatusOr<std::string> token = rami::proto::ReadTokenFile(path, "--auth_token_file");
    if (!token.ok()) return Fail(std::string(token.status().message()));
    options.auth_token = std::move(*token);
  } else if (options.tls.enabled()) {
    // Mutual TLS alone: callers are known by their certificates.
  } else if (!rami::service::IsLoopbackListenAddress(listen)) {
    return Fail("--listen=" + listen +
                " is not a loopback address: a worker port reachable from other hosts needs "
                "--auth_token_file (the coordinator's --worker_auth_token_file) or mutual TLS "
                "(--tls_cert_file, --tls_key_file, --tls_ca_file)");
  } else {
    std::fprintf(stderr,
                 "rami-worker: WARNING: no --auth_token_file: the worker port %s is OPEN — any "
                 "local process may load, step or stop this worker. Pass --auth_token_file "
                 "(the coordinator's --worker_auth_token_file) outside throwaway loopback "
                 "setups.\n",
                 listen.c_str());
  }
  absl::StatusOr<rami::service::ModelRoots> roots =
      rami::service::ModelRoots::Parse(absl::GetFlag(FLAGS_model_roots));
  if (!roots.ok()) return Fail(std::string(roots.status().message()));
  if (roots->roots().empty()) {
    std::fprintf(stderr,
                 "rami-worker: WARNING: no --model_roots: every LoadShard will be refused\n");
  }
  options.model_roots = std::move(*roots);
  const int signals = rami::CatchTerminationSignals();
  absl::Notification stop;
  std::thread([&stop, signals] {
    rami::WaitForTerminationSignal(signals);
    if (!stop.HasBeenNotified()) stop.Notify();
  }).detach();

  rami::service::WorkerService service(options, [&stop] {
    if (!stop.HasBeenNotified()) stop.Notify();
  });
  options.auth_token.reset();  // the service keeps only its hash
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen,
                           options.tls.enabled() ? rami::tls::ServerCredentials(options.tls)
                                                 : grpc::InsecureServerCredentials(),
                           &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "rami-worker: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  rami::WritePortFile(absl::GetFlag(FLAGS_port_file), port);
  std::printf("rami-worker: serving on port %d\n", port);
  std::fflush(stdout);
  // Shutdown RPC or signal: stop serving; in-flight RPCs get a second to finish.
  stop.WaitForNotification();
  service.Stop();  // pending StoreGets return now, not at their timeouts
  absl::Notification stopped;
  std::thread([&server, &stopped] {
    server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    server->Wait();
    stopped.Notify();
  }).detach();
  // A step handler blocked in a collective (Gloo or NCCL waiting on a peer that is gone) cannot
  // be interrupted and would hold the server until the collective timeout: leave it behind.
  if (!stopped.WaitForNotificationWithTimeout(absl::Seconds(2))) {
    std::printf(
        "rami-worker: stopped, leaving behind a step blocked in a collective (a peer "
        "is gone)\n");
    std::fflush(stdout);
    std::_Exit(0);  // no destructors: the blocked thread still uses the engine
  }
  std::printf("rami-worker: stopped\n");
  return 0;
}
