// LoadShard's messages and the core's engine::ShardOptions / ShardInfo: one function per
// direction. Request fields keep their names in error messages ("LoadShard: page_size: ...").
#pragma once

#include "absl/status/statusor.h"
#include "rami/worker/v1/worker.pb.h"
#include "worker/engine/shard.h"

namespace rami::service {

// The request's options with the protocol's defaults applied (0 = default for page_size,
// gpu_memory_utilization, max_step_tokens, max_step_sequences, collective_timeout_seconds),
// validated by ShardOptions::Validate. The rendezvous store's address and the group id are required
// for world_size > 1.
absl::StatusOr<engine::ShardOptions> ShardOptionsFromProto(
    const worker::v1::LoadShardRequest& request);
void ShardInfoToProto(const engine::ShardInfo& info, worker::v1::LoadShardResponse* response);

}  // namespace rami::service
