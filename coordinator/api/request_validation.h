// Request validation: rami.v1.GenerateRequest -> ValidatedRequest, or INVALID_ARGUMENT whose
// message names the field and its limit ("n: must be in [1, 256], got 300"). The one gate
// between the public API and the job code: nothing past it re-checks a client's values.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/api/model_front_end.h"
#include "coordinator/api/server_limits.h"
#include "coordinator/api/validated_request.h"
#include "rami/v1/inference.pb.h"

namespace rami::api {

// Validates every field of `request` for `model` under `limits` (already Validate()d) and
// resolves the defaults. `now` decides whether the deadline has passed. Errors:
// INVALID_ARGUMENT for a bad field; FAILED_PRECONDITION for text input to a model without a
// tokenizer (or messages to one without a chat template). The first bad field is reported.
absl::StatusOr<ValidatedRequest> ValidateRequest(const rami::v1::GenerateRequest& request,
                                                 const ModelFrontEnd& model,
                                                 const ServerLimits& limits, absl::Time now);

// Tokenize: the prompt token ids `request`'s input would become in a GenerateRequest (the same
// rules and errors).
absl::StatusOr<std::vector<int32_t>> Tokenize(const rami::v1::TokenizeRequest& request,
                                              const ModelFrontEnd& model);
// Detokenize: the text of `request.token_ids` (each inside the vocabulary, at most the model's
// context of them); FAILED_PRECONDITION for a model without a tokenizer.
absl::StatusOr<std::string> Detokenize(const rami::v1::DetokenizeRequest& request,
                                       const ModelFrontEnd& model);

}  // namespace rami::api
