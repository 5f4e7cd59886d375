// WorkerLease: which coordinator this worker serves. A worker serves one coordinator at a
// time: LoadShard takes the lease (required; refused while another holder's lease is live),
// steps and RenewLease keep it alive, a plan of another epoch than the lease's is refused (its
// coordinator has lost this worker), and while the lease is live only its holder may stop the
// worker. Refusals never name the holder nor the epoch. Thread-safe: renewals must not wait
// behind a long step.
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
  // LoadShard's lease, alone: INVALID_ARGUMENT naming the field (holder required, epoch > 0,
  // seconds in (0, 3600]).
  static absl::Status Validate(const worker::v1::Lease& lease);
  // OK when `lease` (validated) could be taken now: no live lease of another holder (the same
  // holder, a restarted coordinator, takes over at once). FAILED_PRECONDITION otherwise.
  absl::Status CanTake(const worker::v1::Lease& lease);
  // CanTake, then takes it, atomically.
  absl::Status Take(const worker::v1::Lease& lease);
  // RenewLease: the lease's length in seconds, or FailedPrecondition for another holder/epoch.
  absl::StatusOr<double> Renew(const std::string& holder, int64_t epoch);
  // Step: OK when a plan of lease `epoch` may run (the lease's epoch; 0 never); renews it.
  absl::Status Check(int64_t epoch);
  // Shutdown: OK for the live lease's holder and epoch, or when no lease is live.
  absl::Status CheckShutdown(const std::string& holder, int64_t epoch);

 private:
  absl::Status CanTakeLocked(const worker::v1::Lease& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::string holder_ ABSL_GUARDED_BY(mu_);  // empty: none
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration length_ ABSL_GUARDED_BY(mu_);
  absl::Time expiry_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace rami::service
