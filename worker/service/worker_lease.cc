// WorkerLease: take, renew, check.
#include "worker/service/worker_lease.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace rami::service {

absl::Status WorkerLease::Take(const worker::v1::Lease& lease) {
  if (!lease.holder().empty()) {
    if (lease.epoch() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("LoadShard: lease.epoch: expected > 0, found ", lease.epoch()));
    }
    if (!(lease.seconds() > 0 && lease.seconds() <= 3600)) {
      return absl::InvalidArgumentError(
          absl::StrCat("LoadShard: lease.seconds: expected (0, 3600], found ", lease.seconds()));
    }
  }
  absl::MutexLock lock(&mu_);
  if (!holder_.empty() && holder_ != lease.holder()) {
    const absl::Duration left = expiry_ - absl::Now();
    if (left > absl::ZeroDuration()) {
      return absl::FailedPreconditionError(
          absl::StrCat("LoadShard: lease: this worker serves coordinator \"", holder_, "\" (epoch ",
                       epoch_, ") whose lease lapses in ", absl::FormatDuration(left),
                       "; a worker serves one coordinator at a time"));
    }
  }
  holder_ = lease.holder();
  epoch_ = lease.epoch();
  length_ = absl::Seconds(lease.seconds());
  expiry_ = absl::Now() + length_;
  return absl::OkStatus();
}

absl::StatusOr<double> WorkerLease::Renew(const std::string& holder, int64_t epoch) {
  absl::MutexLock lock(&mu_);
  if (holder.empty() || holder != holder_ || epoch != epoch_) {
    return absl::FailedPreconditionError(absl::StrCat("RenewLease: the lease is held by \"",
                                                      holder_, "\" (epoch ", epoch_, "), not \"",
                                                      holder, "\" (epoch ", epoch, ")"));
  }
  expiry_ = absl::Now() + length_;
  return absl::ToDoubleSeconds(length_);
}

absl::Status WorkerLease::Check(int64_t epoch) {
  if (epoch == 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_) {
    return absl::FailedPreconditionError(
        absl::StrCat("lease lost: the shard is now served under epoch ", epoch_, " (holder \"",
                     holder_, "\"), the plan carries epoch ", epoch));
  }
  expiry_ = absl::Now() + length_;  // a step renews the lease
  return absl::OkStatus();
}

}  // namespace rami::service
