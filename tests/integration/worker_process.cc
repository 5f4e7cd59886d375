// Spawning and reaping rami-worker processes.
#include "tests/integration/worker_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

extern char** environ;

namespace rami::testing {

WorkerProcess::WorkerProcess() : WorkerProcess(RAMI_WORKER_BINARY, {}) {}

WorkerProcess::WorkerProcess(const std::string& binary, const std::vector<std::string>& extra,
                             double start_timeout_seconds) {
  static std::atomic<int> counter{0};
  port_file_ =
      "/tmp/rami_worker_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".port";
  std::remove(port_file_.c_str());
  std::vector<std::string> args = {binary, "--listen=127.0.0.1:0", "--port_file=" + port_file_};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
    pid_ = -1;
    return;
  }
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(start_timeout_seconds * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(port_file_);
    if (in >> port_) break;
    port_ = 0;
    if (WaitExit(0) != -1 || pid_ <= 0) break;  // it exited without serving
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (port_ > 0) {
    stub_ = worker::v1::Worker::NewStub(
        grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
  }
}

WorkerProcess::~WorkerProcess() {
  Kill();
  WaitExit(5);
  std::remove(port_file_.c_str());
}

void WorkerProcess::Kill() {
  if (pid_ > 0) kill(pid_, SIGKILL);
}

void WorkerProcess::Stop() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void WorkerProcess::Continue() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

void WorkerProcess::Terminate() {
  if (pid_ > 0) kill(pid_, SIGTERM);
}

int WorkerProcess::WaitExit(double seconds) {
  if (pid_ <= 0) return exit_status_;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace rami::testing
