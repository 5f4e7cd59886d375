// LoadWeights: one tensor-parallel rank's fp32 shard (model_weights.h) of a Llama-family or
// DeepSeek checkpoint, validated and sliced at load time; fp8 weights are dequantized
// (shard_reader.h).
#pragma once

#include <functional>

#include "absl/status/statusor.h"
#include "worker/checkpoint/checkpoint.h"
#include "worker/checkpoint/model_config.h"
#include "worker/checkpoint/model_weights.h"
#include "worker/checkpoint/shard_dims.h"

namespace rami::checkpoint {

// Validates the checkpoint's tensor names (none missing, none unexpected) and shapes, then
// reads and slices this rank's shard.
absl::StatusOr<ModelWeights> LoadWeights(const Checkpoint& checkpoint, const ModelConfig& config,
                                         const ShardSpec& shard);

// LoadWeights one layer at a time, for a caller that moves each layer elsewhere (the CUDA
// backend uploads it) so that the host never holds more than one layer in fp32: the result has
// the embedding, LM head and final norm but no layers; `take` receives every layer in order
// (an error of `take` ends the load and is returned).
absl::StatusOr<ModelWeights> LoadWeightsByLayer(
    const Checkpoint& checkpoint, const ModelConfig& config, const ShardSpec& shard,
    const std::function<absl::Status(int layer, LayerWeights&& weights)>& take);

}  // namespace rami::checkpoint
