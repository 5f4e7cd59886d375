// TokenBucket: refill by elapsed time, capped at the burst.
#include "coordinator/auth/token_bucket.h"

#include <algorithm>

namespace rami::auth {

TokenBucket::TokenBucket(double rate, int burst, absl::Time now)
    : rate_(rate), burst_(burst), tokens_(burst), last_(now) {}

bool TokenBucket::TryTake(absl::Time now) {
  if (now > last_) {
    tokens_ = std::min(burst_, tokens_ + absl::ToDoubleSeconds(now - last_) * rate_);
    last_ = now;
  }
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace rami::auth
