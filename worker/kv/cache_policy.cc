// Cache policy parsing and validation.
#include "worker/kv/cache_policy.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rami::kv {

absl::StatusOr<CachePolicy> CachePolicy::Parse(const std::string& text, int32_t dms_window) {
  CachePolicy policy;
  if (text == "dense") {
    policy = Dense();
  } else if (text == "dms") {
    policy = Dms(dms_window);
  } else if (absl::StartsWith(text, "window:")) {
    const std::vector<std::string> parts = absl::StrSplit(text, ':');
    int32_t sinks = 0, recent = 0;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &sinks) ||
        !absl::SimpleAtoi(parts[2], &recent)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cache policy: expected \"window:<sinks>:<recent>\", found \"", text, "\""));
    }
    policy = Window(sinks, recent);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache policy: expected dense, dms or window:<sinks>:<recent>, found \"", text, "\""));
  }
  if (absl::Status s = policy.Validate(); !s.ok()) return s;
  return policy;
}

absl::Status CachePolicy::Validate() const {
  switch (kind) {
    case CachePolicyKind::kDense:
      return absl::OkStatus();
    case CachePolicyKind::kDms:
      if (window < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("cache policy dms: window must be >= 0, found ", window));
      }
      return absl::OkStatus();
    case CachePolicyKind::kWindow:
      if (sinks < 0 || window < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("cache policy window: sinks must be >= 0 and recent >= 1, found sinks ",
                         sinks, ", recent ", window + 1));
      }
      return absl::OkStatus();
  }
  return absl::InternalError("unknown cache policy");
}

std::string CachePolicy::ToString() const {
  switch (kind) {
    case CachePolicyKind::kDense:
      return "dense";
    case CachePolicyKind::kDms:
      return absl::StrCat("dms(W=", window, ")");
    case CachePolicyKind::kWindow:
      return absl::StrCat("window(sinks=", sinks, ", recent=", window + 1, ")");
  }
  return "unknown";
}

}  // namespace rami::kv
