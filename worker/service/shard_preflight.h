// PreflightShard: the cheap checks of a LoadShard that run before the loaded shard is
// dropped — the checkpoint opens (config.json parses, every safetensors header reads, the index
// agrees with the files) and its config is one this worker can run. Tensors are not read.
// A request that fails here leaves the serving shard untouched.
#pragma once

#include "absl/status/status.h"
#include "worker/engine/shard.h"

namespace rami::service {

absl::Status PreflightShard(const engine::ShardOptions& options);

}  // namespace rami::service
