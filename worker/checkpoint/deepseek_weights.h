// LoadDeepseekLayer: the weights of a DeepSeek-V2/V3 layer — multi-head latent attention, a
// dense MLP or the mixture of experts, the DMS-MLA adapter — in float32, one tensor-parallel
// rank's shard (query heads and expert intermediate rows split across ranks; the latent path
// and the router replicated). Called by LoadWeights (weights.h).
#pragma once

#include "absl/status/statusor.h"
#include "worker/checkpoint/model_config.h"
#include "worker/checkpoint/model_weights.h"
#include "worker/checkpoint/shard_dims.h"
#include "worker/checkpoint/shard_reader.h"

namespace rami::checkpoint {

// DeepSeek-V2/V3 layer `layer` (deepseek_weights.cc): MLA, dense MLP or MoE, DMS adapter.
absl::StatusOr<LayerWeights> LoadDeepseekLayer(ShardReader& reader, const ModelConfig& config,
                                               const ShardDims& dims, const ShardSpec& shard,
                                               int layer);

}  // namespace rami::checkpoint
