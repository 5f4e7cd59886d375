// Random device weights for benchmarks of real shapes without a checkpoint: every tensor
// cuda::DeviceWeights::Allocate makes for a Llama-family config, filled on the device
// (random_fill.h) — matrices, embeddings and biases uniform in ±0.02, norm weights in 1 ± 0.02,
// each tensor its own seed in a fixed order. Activations stay finite over any depth: every block
// of these pre-norm decoders reads an RMS-normalized input, and a projection of a unit-RMS input
// has RMS 0.02·sqrt(k/3) (0.74 for k = 4096), so each block adds an O(1) delta whatever the layer
// and the residual stream only grows additively (~sqrt(2L)·O(1) after L layers); the q/k norms
// keep the attention logits O(1) and the final norm the logits' RMS at ~0.74. DMS (borrowed
// neuron): q's decision channel is O(1) after the q norm, so about half of the decisions evict
// (α = q·100 − 5 > 0) — the random model's own rate, not a checkpoint's.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/cuda/device_dtype.h"
#include "worker/checkpoint/model_config.h"
#include "worker/checkpoint/shard_dims.h"
#include "worker/cuda/device_weights.h"

namespace rami::bench {

absl::StatusOr<std::unique_ptr<cuda::DeviceWeights>> RandomDeviceWeights(
    const checkpoint::ModelConfig& config, const checkpoint::ShardDims& dims,
    kernels::DeviceDType dtype, uint64_t seed);

}  // namespace rami::bench
