// LoadWeights: one tensor-parallel rank's fp32 shard (model_weights.h) of a Llama-family or
// DeepSeek checkpoint, validated and sliced at load time; fp8 weights are dequantized
// (shard_reader.h).
#pragma once

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

}  // namespace rami::checkpoint
