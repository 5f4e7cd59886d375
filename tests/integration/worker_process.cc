// Spawning and reaping rami-worker processes.
#include "tests/integration/worker_process.h"

#include <fcntl.h>
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

#include "gtest/gtest.h"
#include "proto/worker_credentials.h"

extern char** environ;

namespace rami::testing {

namespace {

// The token file, removed when the test process ends.
struct TokenFile {
  std::string token = proto::NewRandomToken();
  std::string path = ::testing::TempDir() + "/rami_worker_token_" + std::to_string(getpid());
  TokenFile() {
    std::remove(path.c_str());
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
      const std::string line = token + "\n";
      if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) path.clear();
      close(fd);
    }
  }
  ~TokenFile() { std::remove(path.c_str()); }
};

const TokenFile& Token() {
  static const TokenFile file;
  return file;
}

}  // namespace

const std::string& TestAuthToken() { return Token().token; }
const std::string& TestAuthTokenFile() { return Token().path; }

std::string TestModelRoots() {
  return std::string(RAMI_SOURCE_DIR) + "/tests," + ::testing::TempDir();
}

WorkerProcess::WorkerProcess()
    : WorkerProcess(RAMI_WORKER_BINARY, {"--auth_token_file=" + TestAuthTokenFile(),
                                         "--model_roots=" + TestModelRoots()}) {}

std::unique_ptr<worker::v1::Worker::Stub> WorkerProcess::StubWithToken(
    const std::string& bearer_token) const {
  return worker::v1::Worker::NewStub(proto::NewWorkerChannel(address(), bearer_token));
}

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
    stub_ = StubWithToken(TestAuthToken());
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
