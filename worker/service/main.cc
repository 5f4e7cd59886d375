// rami-worker: one tensor-parallel rank. Serves rami.worker.v1.Worker (and grpc.health.v1)
// until a Shutdown RPC or SIGTERM/SIGINT, then exits 0.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "worker/service/worker_service.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "address to serve on (port 0: pick a free one)");
ABSL_FLAG(std::string, port_file, "", "write the bound port to this file once serving");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("rami-worker --listen=HOST:PORT [--port_file=PATH]");
  absl::ParseCommandLine(argc, argv);
  // SIGTERM/SIGINT are blocked in every thread and taken by one thread with sigwait, which
  // may take locks (a signal handler may not).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  absl::Notification stop;
  std::thread([&stop, signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    if (!stop.HasBeenNotified()) stop.Notify();
  }).detach();

  rami::WorkerService service([&stop] {
    if (!stop.HasBeenNotified()) stop.Notify();
  });
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "rami-worker: cannot listen on %s\n", absl::GetFlag(FLAGS_listen).c_str());
    return 1;
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), port_file.c_str());  // readers never see a partial file
  }
  std::printf("rami-worker: serving on port %d\n", port);
  std::fflush(stdout);
  // Shutdown RPC or signal: stop serving; in-flight RPCs get a second to finish.
  stop.WaitForNotification();
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  server->Wait();
  std::printf("rami-worker: stopped\n");
  return 0;
}
