// WorkerProcess: a real rami-worker (or any rami server binary) on loopback for integration
// tests — spawned with --listen=127.0.0.1:0, its port read from --port_file, killed on
// destruction. A worker started by the default constructor takes the test process's control
// token (TestAuthTokenFile) and the test model roots (TestModelRoots), and stub() sends that
// token on every call, as the coordinator does.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "rami/worker/v1/worker.grpc.pb.h"

namespace rami::testing {

// The control secret of every worker this test process starts (random per process), and the
// file holding it (mode 0600, under ::testing::TempDir()).
const std::string& TestAuthToken();
const std::string& TestAuthTokenFile();
// --model_roots of the test workers: the source tree's tests/ (golden models) and TempDir().
std::string TestModelRoots();

class WorkerProcess {
 public:
  // Starts rami-worker with --auth_token_file=TestAuthTokenFile() and
  // --model_roots=TestModelRoots(), and waits (up to 20 s) until it serves; check ok().
  WorkerProcess();
  // Starts `binary` with `args` plus the listen and port-file flags.
  WorkerProcess(const std::string& binary, const std::vector<std::string>& args,
                double start_timeout_seconds = 20);
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  bool ok() const { return port_ > 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  worker::v1::Worker::Stub& stub() { return *stub_; }
  // A stub that sends `bearer_token` on every call (none when empty): an outsider, a peer.
  std::unique_ptr<worker::v1::Worker::Stub> StubWithToken(const std::string& bearer_token) const;

  void Kill();       // SIGKILL
  void Stop();       // SIGSTOP: alive, silent (a wedged worker)
  void Continue();   // SIGCONT
  void Terminate();  // SIGTERM
  // Waits up to `seconds` for the process to exit; its exit status (also once it has been
  // reaped), or -1 on timeout.
  int WaitExit(double seconds);

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;  // once reaped
  int port_ = 0;
  std::string port_file_;
  std::unique_ptr<worker::v1::Worker::Stub> stub_;
};

}  // namespace rami::testing
