// What every rami server binary's main() does around its gRPC server: take SIGTERM/SIGINT
// on a thread (sigwait may take locks; a signal handler may not), and publish the bound port
// in a file so that scripts and tests can start it on port 0.
#pragma once

#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

namespace rami {

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts afterwards;
// call first thing in main(). Returns the set for WaitForTerminationSignal.
inline sigset_t BlockTerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

inline void WaitForTerminationSignal(const sigset_t& signals) {
  int signal = 0;
  sigwait(&signals, &signal);
}

// Writes `port` to `path` atomically (readers never see a partial file); no-op for "".
inline void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace rami
