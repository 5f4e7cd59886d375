// DeepConf confidence: a token's confidence from its top-k log-probs, and BranchConfidence,
// the per-branch accumulator of the sliding-window confidence and the mean chosen log-prob.
// Definitions in docs/aggregation.md §2.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace rami::aggregation {

// Log-probs below this (including -inf and NaN) are read as this value. exp(-100) is below
// any probability a float softmax can tell from zero, and the floor keeps sums finite so a
// masked logit cannot turn a window, or a vote weight, into inf or NaN.
inline constexpr double kLogprobFloor = -100.0;

// −mean of the first min(top_k, top_logprobs.size()) entries of `top_logprobs`, which must be
// best first (as the sampler emits them). With no alternatives at all, the chosen token is
// the only one known: −chosen_logprob. Higher = the model was more certain; ≥ 0.
double TokenConfidence(float chosen_logprob, std::span<const float> top_logprobs, int top_k);

// Fed one token at a time as a branch decodes; O(1) per token (amortised) and O(K) memory.
class BranchConfidence {
 public:
  // `window_tokens` is K (≥ 1, checked).
  explicit BranchConfidence(int window_tokens);

  // Adds the next token: its TokenConfidence and the log-prob of the token actually chosen.
  void AddToken(double token_confidence, float chosen_logprob);

  // Mean token confidence over the last K tokens (all tokens when fewer); 0 with no tokens.
  double confidence() const;
  // Mean log-prob of the chosen tokens (each floored at kLogprobFloor); 0 with no tokens.
  double mean_logprob() const;

  int64_t tokens() const { return tokens_; }
  int window_tokens() const { return window_tokens_; }

 private:
  int window_tokens_;
  int64_t tokens_ = 0;
  std::vector<double> window_;  // ring of the last min(K, tokens_) token confidences
  size_t next_ = 0;             // ring slot the next token overwrites once the ring is full
  double window_sum_ = 0.0;
  double logprob_sum_ = 0.0;
};

}  // namespace rami::aggregation
