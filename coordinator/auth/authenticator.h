// Authenticator: who a public request comes from. With an API key table, a request must carry
// "Bearer <key>" (gRPC metadata `authorization`, HTTP header Authorization) naming a known key,
// and each key's requests per second are held to its token bucket. Without one (no
// --api_keys_file) every request is the one anonymous owner: an admin without limits, as the
// coordinator was before keys. Thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "coordinator/auth/api_keys.h"
#include "coordinator/auth/token_bucket.h"

namespace rami::auth {

// The caller of one request: its key's name ("" for the anonymous owner), role and limits.
struct Caller {
  std::string name;
  bool admin = false;
  KeyLimits limits;  // max_jobs, max_branches: for the runner; rps was applied already
};

class Authenticator {
 public:
  // No keys: every request is the anonymous admin, without limits.
  Authenticator();
  // `clock` is read once per request, for the token buckets.
  explicit Authenticator(
      std::vector<ApiKey> keys, std::function<absl::Time()> clock = [] { return absl::Now(); });

  bool enabled() const { return table_.has_value(); }
  // `authorization`: the header's value ("" when absent). UNAUTHENTICATED when it is missing,
  // not "Bearer <key>" or names no key; RESOURCE_EXHAUSTED when the key's rps is spent.
  absl::StatusOr<Caller> Authenticate(absl::string_view authorization);

 private:
  std::optional<ApiKeyTable> table_;
  std::function<absl::Time()> clock_;
  absl::Mutex mu_;
  // One per key of table_ (same index); nullopt for a key without an rps limit.
  std::vector<std::optional<TokenBucket>> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rami::auth
