// Sampler: request validation, logits checks, and the CPU sampling kernel.
#include "worker/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "absl/strings/str_cat.h"
#include "kernels/sampling.h"

namespace rami::engine {
namespace {

constexpr char kNoDistribution[] = "the logits have no distribution to sample";

// Why a logits row has no distribution (kernels/sampling.h: the kernel flags such a row), for
// the sequence's error: the first NaN or +Inf logit, or every logit -inf. -Inf alone is a
// masked token. OK for a good row.
absl::Status CheckLogitsRow(absl::Span<const float> x) {
  bool any_finite = false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) || (std::isinf(x[i]) && x[i] > 0)) {
      return absl::InternalError(
          absl::StrCat(kNoDistribution, ": token ", i, " has a non-finite logit ", x[i]));
    }
    any_finite = any_finite || std::isfinite(x[i]);
  }
  if (!any_finite) {
    return absl::InternalError(absl::StrCat(kNoDistribution, ": every logit is -inf"));
  }
  return absl::OkStatus();
}

}  // namespace

static_assert(SamplingParams::kMaxLogprobs == kernels::kMaxLogprobs);

absl::StatusOr<std::vector<SampledToken>> Sample(absl::Span<const float> logits, int vocab_size,
                                                 absl::Span<const SampleRequest> requests) {
  if (vocab_size < 1 || logits.size() % static_cast<size_t>(vocab_size) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sampling: ", logits.size(), " logits are not whole rows of vocab_size ", vocab_size));
  }
  const int64_t logits_rows = static_cast<int64_t>(logits.size() / vocab_size);

  // Validate every request before sampling anything; rows without a distribution are the
  // kernel's to flag (their reason is added to the flagged tokens below).
  int max_logprobs = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const SampleRequest& request = requests[i];
    absl::Status status = ValidateSamplingParams(request.params);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sampling request ", i, ": ", status.message()));
    }
    if (request.row < 0 || request.row >= logits_rows) {
      return absl::InvalidArgumentError(absl::StrCat("sampling request ", i, ": row ", request.row,
                                                     " is outside the ", logits_rows,
                                                     " logits rows"));
    }
    max_logprobs = std::max(max_logprobs, request.params.logprobs);
  }

  // Structure of arrays for the kernel: one entry per request.
  const size_t n = requests.size();
  if (n == 0) return std::vector<SampledToken>();
  std::vector<int32_t> row(n), top_k(n), num_logprobs(n), token(n);
  std::vector<float> temperature(n), top_p(n), min_p(n), logprob(n);
  std::vector<uint64_t> seed(n), index(n);
  for (size_t i = 0; i < n; ++i) {
    const SampleRequest& request = requests[i];
    row[i] = request.row;
    temperature[i] = request.params.temperature;
    top_k[i] = request.params.top_k;
    top_p[i] = request.params.top_p;
    min_p[i] = request.params.min_p;
    seed[i] = request.params.seed;
    index[i] = request.index;
    num_logprobs[i] = request.params.logprobs;
  }
  std::vector<int32_t> top_ids(n * max_logprobs);     // [n, max_logprobs]
  std::vector<float> top_logprobs(n * max_logprobs);  // [n, max_logprobs]
  kernels::SampleCpu({.logits = logits.data(),
                      .logits_row = row.data(),
                      .temperature = temperature.data(),
                      .top_k = top_k.data(),
                      .top_p = top_p.data(),
                      .min_p = min_p.data(),
                      .seed = seed.data(),
                      .index = index.data(),
                      .num_logprobs = num_logprobs.data(),
                      .token = token.data(),
                      .logprob = logprob.data(),
                      .top_ids = top_ids.data(),
                      .top_logprobs = top_logprobs.data(),
                      .rows = static_cast<int>(n),
                      .vocab = vocab_size,
                      .max_logprobs = max_logprobs});

  std::vector<SampledToken> out = SampledTokens(requests, token.data(), logprob.data(),
                                                top_ids.data(), top_logprobs.data(), max_logprobs);
  for (size_t i = 0; i < n; ++i) {
    if (out[i].status.ok()) continue;
    absl::Status why =
        CheckLogitsRow(logits.subspan(static_cast<size_t>(row[i]) * vocab_size, vocab_size));
    if (!why.ok()) out[i].status = why;
  }
  return out;
}

std::vector<SampledToken> SampledTokens(absl::Span<const SampleRequest> requests,
                                        const int32_t* token, const float* logprob,
                                        const int32_t* top_ids, const float* top_logprobs,
                                        int max_logprobs) {
  std::vector<SampledToken> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    if (token[i] < 0) {
      out[i].status = absl::InternalError(
          absl::StrCat(kNoDistribution, " (a NaN or +inf logit, or none finite)"));
      continue;
    }
    out[i].token_id = token[i];
    out[i].logprob = logprob[i];
    // The kernel fills min(logprobs, vocab) entries; the rest are -1.
    for (int j = 0; j < requests[i].params.logprobs; ++j) {
      const size_t at = i * max_logprobs + j;
      if (top_ids[at] < 0) break;
      out[i].top.push_back({top_ids[at], top_logprobs[at]});
    }
  }
  return out;
}

}  // namespace rami::engine
