// The worker's sampler: validates per-token sampling requests (ValidateSamplingParams) against
// the step's logits and runs the sampling kernel (semantics in kernels/sampling.h). Bad
// parameters or broken logits give an InvalidArgument status naming the request, the field and
// the limit; they never crash the worker.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/sampling_params.h"

namespace rami::engine {

// One token to sample: the logits row it reads, its sequence's sampling parameters and where
// the token sits in its sequence's random stream.
struct SampleRequest {
  int32_t row = 0;     // logits row; several requests may share one (fork children)
  uint64_t index = 0;  // index of this token among the sequence's generated tokens
  SamplingParams params;
};

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

struct SampledToken {
  // Not OK when the logits row has no distribution (a NaN or +Inf logit, or no finite one):
  // nothing was sampled and the fields below are meaningless. The sequence fails, the step
  // does not (docs/worker.md "A step").
  absl::Status status;
  int32_t token_id = 0;
  float logprob = 0.0f;           // raw model log-prob (temperature 1, before any filter)
  std::vector<TokenLogprob> top;  // the `logprobs` most likely tokens, best first
};

// A scored prompt token (prompt log-probs): a given token's log-prob at a position — the same
// definition as SampledToken::logprob — and the position's most likely tokens.
struct TokenScore {
  int32_t token_id = 0;
  float logprob = 0.0f;           // raw model log-prob (temperature 1, no filter)
  std::vector<TokenLogprob> top;  // the `logprobs` most likely tokens, best first
};

// One token per request from logits [rows, vocab_size] (ForwardResult's layout). Fails, and
// samples nothing, when vocab_size < 1, logits is not whole rows, or a request is invalid or
// names a missing row. A request whose row holds a NaN or +Inf logit or no finite one gets a
// token whose status says so (naming the token and its logit); the others are sampled.
absl::StatusOr<std::vector<SampledToken>> Sample(absl::Span<const float> logits, int vocab_size,
                                                 absl::Span<const SampleRequest> requests);

// The sampling kernel's outputs (kernels/sampling.h SampleParams: token, logprob, and top_ids /
// top_logprobs with row stride max_logprobs) as one SampledToken per request; shared by the CPU
// and the device samplers. A token -1 (the kernel's flag of a row without a distribution)
// becomes a token with an Internal status.
std::vector<SampledToken> SampledTokens(absl::Span<const SampleRequest> requests,
                                        const int32_t* token, const float* logprob,
                                        const int32_t* top_ids, const float* top_logprobs,
                                        int max_logprobs);

}  // namespace rami::engine
