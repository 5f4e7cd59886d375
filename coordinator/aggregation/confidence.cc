// DeepConf token and branch confidence (see confidence.h).
#include "coordinator/aggregation/confidence.h"

#include <algorithm>

#include "base/check.h"

namespace rami::aggregation {
namespace {

double Floored(double logprob) { return logprob >= kLogprobFloor ? logprob : kLogprobFloor; }

}  // namespace

double TokenConfidence(float chosen_logprob, std::span<const float> top_logprobs, int top_k) {
  const size_t k = std::min(top_logprobs.size(), static_cast<size_t>(std::max(top_k, 0)));
  if (k == 0) return -Floored(chosen_logprob);
  double sum = 0.0;
  for (size_t i = 0; i < k; ++i) sum += Floored(top_logprobs[i]);
  return -sum / static_cast<double>(k);
}

BranchConfidence::BranchConfidence(int window_tokens) : window_tokens_(window_tokens) {
  RAMI_CHECK(window_tokens >= 1, "window_tokens = %d", window_tokens);
}

void BranchConfidence::AddToken(double token_confidence, float chosen_logprob) {
  ++tokens_;
  logprob_sum_ += Floored(chosen_logprob);
  // The ring grows to K entries, so a short branch with a large K costs only its length.
  if (window_.size() < static_cast<size_t>(window_tokens_)) {
    window_.push_back(token_confidence);
    window_sum_ += token_confidence;
    return;
  }
  window_sum_ += token_confidence - window_[next_];
  window_[next_] = token_confidence;
  if (++next_ == window_.size()) {
    next_ = 0;
    // Resum once per lap (O(1) amortised): the running add/subtract would otherwise drift
    // over a branch of many thousand tokens.
    window_sum_ = 0.0;
    for (double c : window_) window_sum_ += c;
  }
}

double BranchConfidence::confidence() const {
  return window_.empty() ? 0.0 : window_sum_ / static_cast<double>(window_.size());
}

double BranchConfidence::mean_logprob() const {
  return tokens_ == 0 ? 0.0 : logprob_sum_ / static_cast<double>(tokens_);
}

}  // namespace rami::aggregation
