// MoeRoutingParamsFor: the routing kernels' params for a model's MoE config — shared by the CPU
// and CUDA backends, which route with the same kernels' semantics (kernels/moe_routing.h).
#pragma once

#include "kernels/moe_routing.h"
#include "worker/checkpoint/model_config.h"

namespace rami::engine {

// For `num_tokens` tokens; the caller sets the logits, correction bias and output pointers.
kernels::MoeRoutingParams MoeRoutingParamsFor(const checkpoint::MoeConfig& m, int num_tokens);

}  // namespace rami::engine
