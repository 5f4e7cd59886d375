// ServerLimits: the caps a deployment puts on requests (branches, tokens, log-probs, stop
// strings, queue length). Filled from the coordinator's flags in main.cc and checked once
// with Validate(); request validation then quotes these numbers in its error messages.
#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace rami::api {

// The most top-n log-probs a worker returns per token (rami.worker.v1 SamplingParams.logprobs);
// bounds both the client's `logprobs` and DeepConf's `confidence_top_k`.
inline constexpr int32_t kMaxTopLogprobs = 20;

struct ServerLimits {
  int32_t max_n = 256;               // branches per job
  int32_t max_tokens_default = 256;  // per branch, when a request leaves max_tokens at 0
  int64_t max_context = 0;           // tokens; 0 = the model's context, else min(this, model's)
  int32_t max_logprobs = 20;         // top-n log-probs per streamed token, <= kMaxTopLogprobs
  int32_t max_stop_strings = 8;
  int32_t max_stop_string_bytes = 256;
  int64_t max_prompt_tokens = 0;  // 0 = no limit but the context
  int32_t queue_limit = 1024;     // jobs waiting for admission; beyond: RESOURCE_EXHAUSTED

  // INVALID_ARGUMENT naming the first field out of range.
  absl::Status Validate() const;

  // The context a request may fill on a model whose own context is `model_context` tokens.
  int64_t EffectiveContext(int64_t model_context) const {
    return max_context > 0 && max_context < model_context ? max_context : model_context;
  }
};

}  // namespace rami::api
