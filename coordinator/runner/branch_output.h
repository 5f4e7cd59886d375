// BranchOutput: what one branch has produced — its tokens' text (streamed as complete UTF-8),
// log-probs, DeepConf confidence — and its stop conditions (EOS, stop token, stop string,
// max_tokens). The runner feeds it accepted tokens; it says when the branch ends and why.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/aggregation/aggregator.h"
#include "coordinator/aggregation/confidence.h"
#include "coordinator/api/validated_request.h"
#include "coordinator/tokenizer/incremental_decoder.h"
#include "rami/v1/inference.pb.h"
#include "rami/worker/v1/worker.pb.h"

namespace rami::coordinator {

class BranchOutput {
 public:
  // `tokenizer` may be null (token-id-only models: no text, no stop strings).
  BranchOutput(const api::ValidatedRequest& request, const tokenizer::Tokenizer* tokenizer,
               int confidence_window);

  // Adds one accepted token; fills `delta` with its text and log-probs. Returns the finish
  // reason if the branch ends with this token.
  std::optional<aggregation::FinishReason> Add(const worker::v1::SampledToken& token,
                                               int confidence_top_k, rami::v1::Delta* delta);

  const std::string& text() const { return text_; }
  int64_t tokens() const { return tokens_; }
  double confidence() const { return confidence_.confidence(); }
  double mean_logprob() const { return confidence_.mean_logprob(); }

 private:
  // Longest suffix of the unstreamed text that is a proper prefix of a stop string.
  size_t HeldBack() const;
  // Streams text_[streamed_, end) into `delta`.
  void Flush(rami::v1::Delta* delta, size_t end);

  const api::ValidatedRequest& request_;
  std::unique_ptr<tokenizer::IncrementalDecoder> decoder_;
  aggregation::BranchConfidence confidence_;
  std::string text_;
  size_t streamed_ = 0;  // bytes of text_ already sent in deltas
  int64_t tokens_ = 0;
};

}  // namespace rami::coordinator
