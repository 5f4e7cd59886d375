// Capacity: what the scheduler knows about a worker group's KV memory at planning time —
// from the ranks' last StepResults (the tightest rank counts) plus conservative bounds for
// what they have not announced (dms.md §4).
#pragma once

#include <cstdint>
#include <map>

#include "coordinator/scheduler/job.h"

namespace rami::coordinator {

struct Capacity {
  int64_t num_pages = 0;   // the pool, min over ranks
  int64_t free_pages = 0;  // min over ranks
  int page_size = 16;
  int64_t streams = 1;  // (layer, KV head) streams of one sequence on the largest rank
  // Exact pages of each sequence's next decode step (max over ranks), when reported.
  std::map<SeqId, int64_t> decode_need;
  // Pages freeing a sequence returns (min over ranks), when reported.
  std::map<SeqId, int64_t> unshared_pages;

  // Worst cases when nothing was announced: a decode adds at most one page per list of
  // every stream; a chunk of C tokens at most ceil(C / P) + 1 per list; a fork copies at
  // most one partial tail page per list.
  int64_t DecodeBound(SeqId seq) const;
  int64_t ChunkBound(int64_t tokens) const;
  int64_t ForkBound() const { return 2 * streams; }

  // Expected footprint of a branch that will generate `tokens` tokens: under DMS
  // W + 1 + (1 − eviction_rate)·(tokens − W − 1) live tokens per stream, else all of them;
  // page-rounded per stream, plus a partial page per list.
  int64_t ProjectedBranchPages(int64_t tokens) const;

  // The group's DMS window and the eviction rate measured so far (0 until known: the
  // projection then assumes nothing is evicted).
  bool evicts = false;
  int64_t window = 0;
  double eviction_rate = 0.0;
};

// The KV a job's sequences hold in a group's cache (or in all its groups), summed over their
// (layer, KV head) streams and the ranks.
struct KvUsage {
  int64_t bytes = 0;
  int64_t live_tokens = 0;
  int64_t logical_tokens = 0;  // the same streams without eviction
};

}  // namespace rami::coordinator
