// EventQueue: the events of one job, produced by the runner thread and consumed by the
// Generate RPC that streams them. Closed after the terminal event (Result or Error).
#pragma once

#include <deque>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "rami/v1/inference.pb.h"

namespace rami::coordinator {

class EventQueue {
 public:
  void Push(rami::v1::GenerateEvent event) {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = event.has_result() || event.has_error();
    events_.push_back(std::move(event));
    changed_.SignalAll();
  }
  // The next event, or nullopt after `timeout` (or when the queue is drained and closed).
  std::optional<rami::v1::GenerateEvent> Pop(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + timeout;
    while (events_.empty() && !closed_) {
      if (changed_.WaitWithDeadline(&mu_, deadline)) break;  // timed out
    }
    if (events_.empty()) return std::nullopt;
    rami::v1::GenerateEvent event = std::move(events_.front());
    events_.pop_front();
    return event;
  }
  bool drained() {
    absl::MutexLock lock(&mu_);
    return closed_ && events_.empty();
  }

 private:
  absl::Mutex mu_;
  std::deque<rami::v1::GenerateEvent> events_ ABSL_GUARDED_BY(mu_);
  absl::CondVar changed_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rami::coordinator
