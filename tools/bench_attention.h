// Decode attention for `rami-bench decode`: one layer's kernels::DecodeAttentionCuda over a
// synthetic DMS-layout cache (dense, or dms with a synthetic eviction rate), timed alone.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace rami::bench {

struct AttentionCase {
  int context = 4096;  // tokens per sequence; the query is the last one
  bool dms = false;    // false: dense (nothing evicted, infinite window)
  int batch = 1;       // sequences, one query token each
  int num_q_heads = 32;
  int num_kv_heads = 8;
  int head_dim = 128;
  double dms_rate = 7.0 / 8.0;  // fraction of tokens evicted once they leave the window
  int dms_window = 512;         // W
  int page_size = 16;
  int iters = 20;
};

struct AttentionResult {
  bool fits = false;         // false: the cache did not fit in free memory (not run)
  double ms = 0;             // one layer's attention, mean over iters
  double bytes = 0;          // bytes read and written by one call (live K and V, q, out)
  int64_t visible_keys = 0;  // per stream: kept + window
  double cache_bytes = 0;    // the layer's K and V pools as allocated
};

// Live tokens one stream keeps at `context` (dense: all of them).
int64_t VisibleKeys(const AttentionCase& c);

// Builds the cache (random bf16 K/V, contiguous pages per stream), times the kernel, frees it.
// Returns 0, or 1 after printing the failing call.
int TimeDecodeAttention(const AttentionCase& c, cudaStream_t stream, AttentionResult* result);

}  // namespace rami::bench
