// ServerLimits::Validate (see server_limits.h).
#include "coordinator/api/server_limits.h"

#include "absl/strings/str_cat.h"

namespace rami::api {
namespace {

absl::Status OutOfRange(const char* field, int64_t value, int64_t lo, int64_t hi) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be in [", lo, ", ", hi, "], got ", value));
}

}  // namespace

absl::Status ServerLimits::Validate() const {
  constexpr int64_t kInt32Max = INT32_MAX;
  struct Range {
    const char* field;
    int64_t value, lo, hi;
  };
  const Range ranges[] = {
      {"max_n", max_n, 1, kInt32Max},
      {"max_tokens_default", max_tokens_default, 1, kInt32Max},
      {"max_context", max_context, 0, INT64_MAX},
      {"max_logprobs", max_logprobs, 0, kMaxTopLogprobs},
      {"max_stop_strings", max_stop_strings, 0, kInt32Max},
      {"max_stop_string_bytes", max_stop_string_bytes, 1, kInt32Max},
      {"max_prompt_tokens", max_prompt_tokens, 0, INT64_MAX},
      {"queue_limit", queue_limit, 1, kInt32Max},
  };
  for (const Range& r : ranges) {
    if (r.value < r.lo || r.value > r.hi) return OutOfRange(r.field, r.value, r.lo, r.hi);
  }
  return absl::OkStatus();
}

}  // namespace rami::api
