// TokenBucket: a request-rate limit — `burst` requests at once, refilled at `rate` per second.
// Time is passed in (no clock inside), so tests step it by hand. Not thread-safe: its owner
// locks.
#pragma once

#include "absl/time/time.h"

namespace rami::auth {

class TokenBucket {
 public:
  // rate > 0 requests per second, burst >= 1; the bucket starts full at `now`.
  TokenBucket(double rate, int burst, absl::Time now);
  // Takes one token if there is one at `now` (time going backwards refills nothing).
  bool TryTake(absl::Time now);

 private:
  double rate_;
  double burst_;
  double tokens_;
  absl::Time last_;
};

}  // namespace rami::auth
