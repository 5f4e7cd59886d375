// WorkerLease: which coordinator this worker serves. A worker serves one coordinator at a
// time: LoadShard takes the lease (refused while another holder's lease is live), steps and
// RenewLease keep it alive, and a plan of another epoch than the lease's is refused (its
// coordinator has lost this worker). Thread-safe: renewals must not wait behind a long step.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rami/worker/v1/worker.pb.h"

namespace rami::service {

class WorkerLease {
 public:
  // LoadShard: validates `lease` and takes it. An empty holder is the unleased mode of tests
  // and tools. FailedPrecondition while another holder's lease is live; the same holder (a
  // restarted coordinator) takes over at once. Taken before the (long) load, so a second
  // coordinator is refused at once.
  absl::Status Take(const worker::v1::Lease& lease);
  // RenewLease: the lease's length in seconds, or FailedPrecondition for another holder/epoch.
  absl::StatusOr<double> Renew(const std::string& holder, int64_t epoch);
  // Step: OK when a plan of lease `epoch` may run (0: unchecked); renews the lease.
  absl::Status Check(int64_t epoch);

 private:
  absl::Mutex mu_;
  std::string holder_ ABSL_GUARDED_BY(mu_);  // empty: none
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration length_ ABSL_GUARDED_BY(mu_);
  absl::Time expiry_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace rami::service
