// What every rami server binary's main() does around its gRPC server: catch SIGTERM/SIGINT
// and hand them to a normal thread, and publish the bound port in a file so that scripts and
// tests can start it on port 0.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <string>

namespace rami {

namespace internal {
// One pipe per kind of signal: [0] read by a normal thread, [1] written by the handler.
inline int termination_pipe[2] = {-1, -1};
inline int reload_pipe[2] = {-1, -1};

// Async-signal-safe: one write of the signal number to the pipe.
template <int (&Pipe)[2]>
void WriteSignalToPipe(int signal) {
  const char byte = static_cast<char>(signal);
  const int saved = errno;
  [[maybe_unused]] ssize_t n = write(Pipe[1], &byte, 1);
  errno = saved;
}

// Creates Pipe once and routes `signals` to it; returns its read end (-1 if no pipe).
template <int (&Pipe)[2]>
int RouteSignalsToPipe(std::initializer_list<int> signals) {
  if (Pipe[0] < 0) {
    if (pipe2(Pipe, O_CLOEXEC) != 0) return -1;
    struct sigaction action = {};
    action.sa_handler = WriteSignalToPipe<Pipe>;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (int signal : signals) sigaction(signal, &action, nullptr);
  }
  return Pipe[0];
}
}  // namespace internal

// Installs handlers for SIGTERM and SIGINT that write to a pipe; call first thing in main().
// A handler, unlike blocking the signals and sigwait, also catches a signal delivered to a
// thread that a library started before main() with the signals unblocked (OpenBLAS does).
// Returns the pipe's read end for WaitForTerminationSignal / TerminationRequested.
inline int CatchTerminationSignals() {
  return internal::RouteSignalsToPipe<internal::termination_pipe>({SIGTERM, SIGINT});
}

// Installs a SIGHUP handler (reload certificates) that writes to a pipe of its own; returns
// the pipe's read end: TerminationRequested(fd, -1) waits for the next SIGHUP, then read the
// byte.
inline int CatchReloadSignal() {
  return internal::RouteSignalsToPipe<internal::reload_pipe>({SIGHUP});
}

// True once a signal arrived, waiting at most `timeout_ms` (0: just look; −1: forever).
inline bool TerminationRequested(int fd, int timeout_ms) {
  pollfd p = {fd, POLLIN, 0};
  int rc;
  do {
    rc = poll(&p, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  return rc > 0;
}

inline void WaitForTerminationSignal(int fd) { TerminationRequested(fd, -1); }

// Writes `port` to `path` atomically (readers never see a partial file); no-op for "".
inline void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace rami
