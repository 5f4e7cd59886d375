// Synthetic KV cache states built through the KvCache API; see bench_cache_state.h.
#include "tools/bench_cache_state.h"

#include <algorithm>
#include <utility>

#include "base/status_macros.h"

namespace rami::bench {

using kv::CachePolicyKind;
using kv::KvCache;
using kv::SeqId;
using kv::StepStreams;

namespace {

constexpr uint64_t kDecisionSeed = 7;

// splitmix64's finalizer: the synthetic decisions' hash.
inline uint64_t Mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

absl::Status BuildSyntheticSequence(KvCache& cache, SeqId id, int64_t context, double rate) {
  RAMI_RETURN_IF_ERROR(cache.AddSequence(id));
  const bool dms = cache.policy().kind == CachePolicyKind::kDms;
  // 2^64 · rate (rate < 1): a hash below it evicts.
  const uint64_t threshold = static_cast<uint64_t>(std::clamp(rate, 0.0, 0.999999) * 0x1p64);
  for (int64_t length = 0; length < context;) {
    const int64_t count = dms ? std::min(kSyntheticChunk, context - length) : context - length;
    const std::pair<SeqId, int64_t> append[] = {{id, count}};
    RAMI_RETURN_IF_ERROR(cache.ReserveAppend(append));
    if (dms) {
      const SeqId ids[] = {id};
      const StepStreams s = cache.BuildStepStreams(ids);
      for (size_t st = 0; st < s.flag_columns.size(); ++st) {
        const uint64_t stream_key = Mix(Mix(kDecisionSeed ^ static_cast<uint64_t>(id)) + st);
        const int64_t base = s.window_base[st];  // window slot i holds position base + i
        for (int64_t p = std::max<int64_t>(length - 1, 0); p < length + count - 1; ++p) {
          s.Flag(st, p - base) = Mix(stream_key + static_cast<uint64_t>(p)) < threshold ? 1 : 0;
        }
      }
    }
    cache.CommitAppend(id, count);
    length += count;
  }
  return absl::OkStatus();
}

absl::StatusOr<SyntheticSequences> BuildSyntheticSequences(
    KvCache& cache, int64_t context, int target, int64_t growth, SeqId first_id, double rate,
    std::chrono::steady_clock::time_point deadline) {
  const int64_t streams = int64_t{cache.num_layers()} * cache.num_kv_heads();
  const int page = cache.pool().page_size();
  // A dms sequence's peak during its build: its final pages + one chunk's window pages.
  const int64_t transient =
      cache.policy().kind == CachePolicyKind::kDms ? streams * (kSyntheticChunk / page + 2) : 0;
  SyntheticSequences built;
  std::vector<SeqId>& ids = built.ids;
  int64_t per_sequence = 0;  // pages of one built sequence (known after the first)
  while (static_cast<int>(ids.size()) < target && std::chrono::steady_clock::now() < deadline) {
    const int64_t n = static_cast<int64_t>(ids.size());
    if (cache.pool().free_pages() < per_sequence + transient + growth * (n + 1)) {
      built.pool_full = true;
      break;
    }
    const SeqId id = first_id + n;
    const int before = cache.pool().pages_in_use();
    const absl::Status status = BuildSyntheticSequence(cache, id, context, rate);
    if (!status.ok()) {
      if (cache.Contains(id)) RAMI_RETURN_IF_ERROR(cache.FreeSequence(id));
      if (!absl::IsResourceExhausted(status)) return status;
      built.pool_full = true;
      break;
    }
    ids.push_back(id);
    per_sequence = std::max<int64_t>(per_sequence, cache.pool().pages_in_use() - before);
  }
  // Every built sequence keeps its growth.
  while (!ids.empty() && cache.pool().free_pages() < growth * static_cast<int64_t>(ids.size())) {
    RAMI_RETURN_IF_ERROR(cache.FreeSequence(ids.back()));
    ids.pop_back();
    built.pool_full = true;
  }
  return built;
}

}  // namespace rami::bench
