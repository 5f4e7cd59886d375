// Authenticator: the bearer token → the key → its rate limit.
#include "coordinator/auth/authenticator.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace rami::auth {

Authenticator::Authenticator() = default;

Authenticator::Authenticator(std::vector<ApiKey> keys, std::function<absl::Time()> clock)
    : clock_(std::move(clock)) {
  const absl::Time now = clock_();
  for (const ApiKey& key : keys) {
    buckets_.push_back(key.limits.rps > 0 ? std::optional<TokenBucket>(
                                                TokenBucket(key.limits.rps, key.limits.burst, now))
                                          : std::nullopt);
  }
  table_.emplace(std::move(keys));
}

absl::StatusOr<Caller> Authenticator::Authenticate(absl::string_view authorization) {
  if (!table_.has_value()) return Caller{.name = "", .admin = true, .limits = {0, 0, 0, 1}};
  authorization = absl::StripAsciiWhitespace(authorization);
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing API key: send the header \"Authorization: Bearer <key>\"");
  }
  constexpr absl::string_view kScheme = "bearer ";
  if (!absl::StartsWithIgnoreCase(authorization, kScheme)) {
    return absl::UnauthenticatedError(
        "the Authorization header is not \"Bearer <key>\"");  // its value is never echoed
  }
  const absl::string_view token = absl::StripAsciiWhitespace(authorization.substr(kScheme.size()));
  const ApiKey* key = table_->Find(token);
  if (key == nullptr) return absl::UnauthenticatedError("invalid API key");
  const size_t index = static_cast<size_t>(key - table_->keys().data());
  {
    absl::MutexLock lock(&mu_);
    std::optional<TokenBucket>& bucket = buckets_[index];
    if (bucket.has_value() && !bucket->TryTake(clock_())) {
      return absl::ResourceExhaustedError(absl::StrCat("api key \"", key->name, "\": rps ",
                                                       key->limits.rps, " reached (burst ",
                                                       key->limits.burst, ")"));
    }
  }
  return Caller{.name = key->name, .admin = key->admin, .limits = key->limits};
}

}  // namespace rami::auth
