// WorkerLease: validate, take, renew, check.
#include "worker/service/worker_lease.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace rami::service {

absl::Status WorkerLease::Validate(const worker::v1::Lease& lease) {
  if (lease.holder().empty()) {
    return absl::InvalidArgumentError(
        "LoadShard: lease.holder: required (a worker serves one coordinator at a time, and "
        "every step carries the lease's epoch)");
  }
  if (lease.epoch() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoadShard: lease.epoch: expected > 0, found ", lease.epoch()));
  }
  if (!(lease.seconds() > 0 && lease.seconds() <= 3600)) {
    return absl::InvalidArgumentError(
        absl::StrCat("LoadShard: lease.seconds: expected (0, 3600], found ", lease.seconds()));
  }
  return absl::OkStatus();
}

absl::Status WorkerLease::CanTakeLocked(const worker::v1::Lease& lease) {
  if (!holder_.empty() && holder_ != lease.holder()) {
    const absl::Duration left = expiry_ - absl::Now();
    if (left > absl::ZeroDuration()) {
      return absl::FailedPreconditionError(
          absl::StrCat("LoadShard: lease: this worker serves another coordinator, whose lease "
                       "lapses in ",
                       absl::FormatDuration(left), "; a worker serves one coordinator at a time"));
    }
  }
  return absl::OkStatus();
}

absl::Status WorkerLease::CanTake(const worker::v1::Lease& lease) {
  absl::MutexLock lock(&mu_);
  return CanTakeLocked(lease);
}

absl::Status WorkerLease::Take(const worker::v1::Lease& lease) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CanTakeLocked(lease); !s.ok()) return s;
  holder_ = lease.holder();
  epoch_ = lease.epoch();
  length_ = absl::Seconds(lease.seconds());
  expiry_ = absl::Now() + length_;
  return absl::OkStatus();
}

absl::StatusOr<double> WorkerLease::Renew(const std::string& holder, int64_t epoch) {
  absl::MutexLock lock(&mu_);
  if (holder.empty() || holder != holder_ || epoch != epoch_) {
    return absl::FailedPreconditionError(
        "RenewLease: the lease is not held by this holder and epoch");
  }
  expiry_ = absl::Now() + length_;
  return absl::ToDoubleSeconds(length_);
}

absl::Status WorkerLease::Check(int64_t epoch) {
  if (epoch == 0) {
    return absl::FailedPreconditionError(
        "lease_epoch: required (the epoch of the lease the shard was loaded under), found 0");
  }
  absl::MutexLock lock(&mu_);
  if (holder_.empty() || epoch != epoch_) {
    return absl::FailedPreconditionError(absl::StrCat("lease lost: the plan's lease epoch ", epoch,
                                                      " is not the epoch the shard serves under"));
  }
  expiry_ = absl::Now() + length_;  // a step renews the lease
  return absl::OkStatus();
}

absl::Status WorkerLease::CheckShutdown(const std::string& holder, int64_t epoch) {
  absl::MutexLock lock(&mu_);
  const bool live = !holder_.empty() && expiry_ > absl::Now();
  if (live && (holder != holder_ || epoch != epoch_)) {
    return absl::FailedPreconditionError(
        "Shutdown: this worker's lease is live; only its holder, with the lease's epoch, may "
        "stop it (or SIGTERM)");
  }
  return absl::OkStatus();
}

}  // namespace rami::service
