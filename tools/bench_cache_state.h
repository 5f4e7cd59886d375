// Synthetic KV cache states for the engine rows of `rami-bench decode` (tools/bench_engine.h):
// sequences of `context` tokens put into a KvCache through its own API — reservations, window
// flags, commits — as a chunked prefill under the cache's policy would leave them, without a
// forward pass. Host-only: the device pool's contents are not written (the benchmark times steps;
// it does not read their results).
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/kv/kv_cache.h"

namespace rami::bench {

using kv::KvCache;
using kv::SeqId;

// Tokens per synthetic chunk under dms: the window briefly holds W + this many tokens.
inline constexpr int64_t kSyntheticChunk = 2048;

// Adds sequence `id` with `context` tokens: per chunk ReserveAppend, then (dms) every stream's
// decisions written into its window flags — token p's decision flags position p − 1 (dms.md §3),
// 1 (evict) with probability `rate` from a hash of (sequence, stream, position), the chunk's last
// token left pending — then CommitAppend, which promotes the tokens that left the window with
// flag 0 to the kept list and drops the others. Dense: one chunk, no flags. On error the
// sequence may exist with fewer tokens (the caller frees it); ResourceExhausted: the pool is full.
absl::Status BuildSyntheticSequence(KvCache& cache, SeqId id, int64_t context, double rate);

struct SyntheticSequences {
  std::vector<SeqId> ids;
  bool pool_full = false;  // stopped because no further sequence fits (not the target or time)
};

// Builds up to `target` sequences of `context` tokens (ids first_id, first_id + 1, …) while the
// pool keeps `growth` free pages per built sequence (for the steps that follow); stops at
// `deadline`.
absl::StatusOr<SyntheticSequences> BuildSyntheticSequences(
    KvCache& cache, int64_t context, int target, int64_t growth, SeqId first_id, double rate,
    std::chrono::steady_clock::time_point deadline);

}  // namespace rami::bench
