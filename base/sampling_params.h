// SamplingParams: how one sequence's tokens are drawn — the one C++ shape of sampling from the
// coordinator's API validation to the worker's sampler (the public and worker protos convert to
// and from it at their boundaries, one function each). Its ranges are checked in one place,
// ValidateSamplingParams, so the API and the workers agree on what is valid.
#pragma once

#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace rami {

struct SamplingParams {
  // The most top-n alternatives a token may report (kernels/sampling.h kMaxLogprobs).
  static constexpr int32_t kMaxLogprobs = 20;

  float temperature = 0.0f;  // finite, >= 0; 0 = greedy
  int32_t top_k = 0;         // >= 0; 0 = off
  float top_p = 1.0f;        // (0, 1]; 1 = off (the one rule: there is no other "off" value)
  float min_p = 0.0f;        // [0, 1]; 0 = off
  uint64_t seed = 0;         // the sequence's random stream
  int32_t logprobs = 0;      // top-n alternatives per token, [0, kMaxLogprobs]
};

// OK when every field is in range; else InvalidArgument naming the field (after `prefix`, e.g.
// "sampling."), the range and the value. Written so that NaN fails every range check.
inline absl::Status ValidateSamplingParams(const SamplingParams& p, absl::string_view prefix = "") {
  auto invalid = [&](absl::string_view field, absl::string_view rule, auto value) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, field, ": must be ", rule, ", got ", value));
  };
  if (!(std::isfinite(p.temperature) && p.temperature >= 0.0f)) {
    return invalid("temperature", "finite and >= 0", p.temperature);
  }
  if (p.top_k < 0) return invalid("top_k", ">= 0 (0 = off)", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return invalid("top_p", "in (0, 1]", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) return invalid("min_p", "in [0, 1]", p.min_p);
  if (p.logprobs < 0 || p.logprobs > SamplingParams::kMaxLogprobs) {
    return invalid("logprobs", absl::StrCat("in [0, ", SamplingParams::kMaxLogprobs, "]"),
                   p.logprobs);
  }
  return absl::OkStatus();
}

}  // namespace rami
