// Random KV-cache traffic.
#include "tests/testing/kv_traffic.h"

#include "base/status_macros.h"

namespace rami::testing {

absl::StatusOr<std::vector<SequenceChunk>> KvTraffic::Next(KvCache& cache) {
  if (live_.size() < 3 || Percent() < 8) {
    RAMI_RETURN_IF_ERROR(cache.AddSequence(next_));
    live_.push_back(next_);
    touched_.push_back(next_++);
  } else if (Percent() < 15) {  // fork a sequence that has tokens
    const SeqId parent = live_[Percent() % live_.size()];
    if (cache.Length(parent) > 0) {
      RAMI_RETURN_IF_ERROR(cache.Fork(parent, {next_}));
      live_.push_back(next_);
      touched_.push_back(next_++);
    }
  } else if (Percent() < 10 && live_.size() > 3) {
    const size_t i = Percent() % live_.size();
    RAMI_RETURN_IF_ERROR(cache.FreeSequence(live_[i]));
    touched_.push_back(live_[i]);
    live_.erase(live_.begin() + static_cast<int64_t>(i));
  }
  // Some sequences sit the step out; new ones prefill, some others get a later chunk (prefill
  // after decode), the rest decode one token.
  std::vector<SequenceChunk> chunks;
  for (SeqId id : live_) {
    const int r = Percent();
    if (r < 15 && cache.Length(id) > 0) continue;
    const int n = cache.Length(id) == 0 || r < 27 ? chunk_(rng_) : 1;
    chunks.push_back({.seq_id = id, .tokens = std::vector<int32_t>(n, 0)});
  }
  if (chunks.empty()) return chunks;
  std::vector<std::pair<SeqId, int64_t>> appends;
  for (const SequenceChunk& c : chunks) {
    appends.emplace_back(c.seq_id, static_cast<int64_t>(c.tokens.size()));
    touched_.push_back(c.seq_id);
  }
  RAMI_RETURN_IF_ERROR(cache.ReserveAppend(appends));
  return chunks;
}

void KvTraffic::Commit(KvCache& cache, const std::vector<SequenceChunk>& chunks) {
  for (const SequenceChunk& c : chunks) {
    cache.CommitAppend(c.seq_id, static_cast<int64_t>(c.tokens.size()));
    touched_.push_back(c.seq_id);
  }
}

}  // namespace rami::testing
