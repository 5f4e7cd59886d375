// Branch text, confidence and stop conditions.
#include "coordinator/runner/branch_output.h"

#include <algorithm>

namespace rami::coordinator {

BranchOutput::BranchOutput(const api::ValidatedRequest& request,
                           const tokenizer::Tokenizer* tokenizer, int confidence_window)
    : request_(request), confidence_(confidence_window) {
  if (tokenizer != nullptr) {
    decoder_ = std::make_unique<tokenizer::IncrementalDecoder>(tokenizer,
                                                               /*skip_special_tokens=*/true,
                                                               request.prompt_token_ids);
  }
}

std::optional<aggregation::FinishReason> BranchOutput::Add(const worker::v1::SampledToken& t,
                                                           int confidence_top_k,
                                                           rami::v1::Delta* delta) {
  ++tokens_;
  std::vector<float> top;
  for (const worker::v1::TokenLogprob& alt : t.top()) top.push_back(alt.logprob());
  confidence_.AddToken(aggregation::TokenConfidence(t.logprob(), top, confidence_top_k),
                       t.logprob());
  delta->add_token_ids(t.token_id());
  if (request_.logprobs > 0) {
    rami::v1::TokenLogprobs* lp = delta->add_logprobs();
    lp->set_token_id(t.token_id());
    lp->set_logprob(t.logprob());
    for (int i = 0; i < std::min(request_.logprobs, t.top_size()); ++i) {
      rami::v1::TopLogprob* alt = lp->add_top();
      alt->set_token_id(t.top(i).token_id());
      alt->set_logprob(t.top(i).logprob());
    }
  }
  const api::StoppingOptions& stop = request_.stopping;
  const int32_t id = t.token_id();
  const bool stop_token =
      std::binary_search(stop.stop_token_ids.begin(), stop.stop_token_ids.end(), id);
  if (decoder_ != nullptr) {
    text_ += stop_token ? decoder_->Finish() : decoder_->Step(id);
    for (const std::string& s : stop.stop) {
      // The stop string may span earlier pieces; it is not part of the output.
      const size_t from = streamed_ >= s.size() ? streamed_ - s.size() + 1 : 0;
      const size_t at = text_.find(s, from);
      if (at == std::string::npos) continue;
      text_.resize(at);
      Flush(delta, text_.size());
      return aggregation::FinishReason::kStopString;
    }
  }
  std::optional<aggregation::FinishReason> reason;
  if (stop_token) {
    const bool eos = std::find(stop.eos_token_ids.begin(), stop.eos_token_ids.end(), id) !=
                     stop.eos_token_ids.end();
    reason = eos ? aggregation::FinishReason::kEos : aggregation::FinishReason::kStopToken;
  } else if (tokens_ >= stop.max_tokens) {
    reason = aggregation::FinishReason::kMaxTokens;
  }
  // Text that could still turn out to be the start of a stop string is held back.
  Flush(delta, reason.has_value() ? text_.size() : text_.size() - HeldBack());
  return reason;
}

size_t BranchOutput::HeldBack() const {
  size_t held = 0;
  for (const std::string& s : request_.stopping.stop) {
    if (s.empty()) continue;
    for (size_t k = std::min(s.size() - 1, text_.size() - streamed_); k > held; --k) {
      if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
        held = k;
        break;
      }
    }
  }
  return held;
}

void BranchOutput::Flush(rami::v1::Delta* delta, size_t end) {
  if (end > streamed_) delta->set_text(text_.substr(streamed_, end - streamed_));
  streamed_ = std::max(streamed_, end);
}

}  // namespace rami::coordinator
