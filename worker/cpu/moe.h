// The DeepSeek mixture-of-experts block on the CPU backend: route every token to its top-k
// experts (kernels/moe_routing.h), run each expert on the tokens routed to it, add the shared
// experts, all-reduce.
//
// Tensor parallelism: every rank holds a 1/T slice of every expert's intermediate dimension
// (and of the shared experts), and the router is replicated. All ranks route identically from
// bit-identical inputs, each computes its slice's partial output of every chosen expert, and
// the one all-reduce that a dense MLP needs anyway sums them — no all-to-all, no load
// imbalance between ranks, and the same communication as the dense layers.
#pragma once

#include "absl/status/status.h"
#include "kernels/moe_routing.h"
#include "worker/collectives/collectives.h"
#include "worker/cpu/decoder_layer.h"

namespace rami::cpu {

// delta = Σ_k weight_k · Expert_k(normed) + SharedExperts(normed), all-reduced.
absl::Status RunMoe(const checkpoint::MoeWeights& w, const LayerContext& ctx, LayerWorkspace& ws,
                    collectives::Collectives& comm);

}  // namespace rami::cpu
