// ShardSpec and ShardDims: which tensor-parallel rank a shard is, and the per-rank sizes of a
// model that follow from its config (heads, MLP widths, vocabulary rows).
#pragma once

#include "absl/status/statusor.h"
#include "worker/checkpoint/model_config.h"

namespace rami::checkpoint {

struct ShardSpec {
  int rank = 0;
  int world_size = 1;
};

// Per-rank sizes derived from the config and the shard; Make() checks divisibility.
// MLA: kv_heads is 1 on every rank (the latent cache is replicated, dms.md §6).
struct ShardDims {
  int q_heads = 0;              // local query heads
  int kv_heads = 0;             // local KV heads
  int intermediate = 0;         // local MLP width
  int moe_intermediate = 0;     // local width of each routed expert (MoE)
  int shared_intermediate = 0;  // local width of the fused shared experts (MoE)
  // Vocabulary rows: every rank holds vocab = ceil(vocab_size / world) rows starting at
  // vocab_start = rank · vocab; the last ranks' rows past vocab_size are zero padding (as vLLM
  // pads its vocab-parallel embedding), so any vocabulary shards over any world. vocab_real is
  // how many of this rank's rows are real tokens (0 … vocab).
  int vocab = 0;
  int vocab_start = 0;
  int vocab_real = 0;
  static absl::StatusOr<ShardDims> Make(const ModelConfig& config, const ShardSpec& shard);
};

}  // namespace rami::checkpoint
