// Request validation: rami.v1.GenerateRequest -> ValidatedRequest, or INVALID_ARGUMENT whose
// message names the field and its limit ("n: must be in [1, 256], got 300"). The one gate
// between the public API and the job code: nothing past it re-checks a client's values.
#pragma once

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

}  // namespace rami::api
