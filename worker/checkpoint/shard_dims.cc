// ShardDims::Make: the per-rank sizes, and the divisibility tensor parallelism needs.
#include "worker/checkpoint/shard_dims.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace rami::checkpoint {
namespace {

absl::Status NotDivisible(const std::string& what, int64_t value, int world) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " (", value, ") is not divisible by the tensor-parallel size ", world));
}

}  // namespace

absl::StatusOr<ShardDims> ShardDims::Make(const ModelConfig& c, const ShardSpec& shard) {
  const int t = shard.world_size;
  if (t < 1 || shard.rank < 0 || shard.rank >= t) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid shard: rank ", shard.rank, " of world size ", t));
  }
  if (c.num_q_heads % t != 0) return NotDivisible("num_attention_heads", c.num_q_heads, t);
  if (!c.mla.enabled && c.num_kv_heads % t != 0) {
    return NotDivisible("num_key_value_heads", c.num_kv_heads, t);
  }
  // Every rank holds a 1/t slice of every expert (and of the shared experts).
  if (c.moe.enabled && c.moe.intermediate_size % t != 0) {
    return NotDivisible("moe_intermediate_size", c.moe.intermediate_size, t);
  }
  if (c.intermediate_size % t != 0)
    return NotDivisible("intermediate_size", c.intermediate_size, t);
  ShardDims d;
  d.q_heads = c.num_q_heads / t;
  d.kv_heads = c.mla.enabled ? 1 : c.num_kv_heads / t;
  d.moe_intermediate = c.moe.intermediate_size / t;
  d.shared_intermediate = c.moe.intermediate_size * c.moe.num_shared_experts / t;
  d.intermediate = c.intermediate_size / t;
  d.vocab = (c.vocab_size + t - 1) / t;  // padded: see ShardDims::vocab
  d.vocab_start = shard.rank * d.vocab;
  d.vocab_real = std::clamp(c.vocab_size - d.vocab_start, 0, d.vocab);
  return d;
}

}  // namespace rami::checkpoint
