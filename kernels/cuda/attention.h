// Device params of attention over the DMS-layout paged cache (dms.md §3–4; view in
// kv_cache_view.h). Both kernels give PagedAttentionCpu's results (kernels/paged_attention.h):
// query t at position pos sees every kept token and every window position p ≤ pos with
// pos − p ≤ W or flag(p) = 0; softmax in fp32; dense = the same with W ≥ any length.
//
//  * Decode (DecodeAttentionCuda): one block per (query token, KV head, split) reads each
//    visible KV slot once for all G = num_q_heads / num_kv_heads query heads of its group.
//    Split-KV: with num_splits > 1, split i covers a range of each query's visible keys
//    (DecodeSplitKeys); partial outputs and log-sum-exps go to the fp32 workspace and a merge
//    kernel combines them. Queries may come from any streams (one per token).
//    Padding: a token whose token_stream is negative (−1) is a padding token of a CUDA graph
//    captured for a larger batch bucket: it reads no table entry and no key, its output rows
//    are zeros (with split-KV every split's lse is −inf, so the merge writes 0). Its q row is
//    never used (it may hold anything, NaN included).
//  * Prefill (PrefillAttentionCuda): tiles of consecutive query tokens of one chunk (same
//    stream, PlanPrefillTiles), each block loading a tile of 32 keys once for all
//    PrefillTileRows() query rows (tokens × heads of the group), online softmax. Serves chunked
//    prefill over an existing cache (kept + window from earlier steps) as well. No padding
//    tokens: every tile token must have a stream.
// Supported: head_dim 64 and 128, G ≤ kAttentionMaxGroup, bf16 or fp32 pools and q/out.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/kv_cache_view.h"

#ifndef RAMI_HOST_DEVICE
#if defined(__CUDACC__)
#define RAMI_HOST_DEVICE __host__ __device__
#else
#define RAMI_HOST_DEVICE
#endif
#endif

namespace rami::kernels {

inline constexpr int kAttentionMaxGroup = 8;

// Balanced splits round their share up to whole multiples of this many keys: a multiple of
// every key loop's stride (8–32 keys per iteration in DecodeAttentionCuda, 32-row tiles in
// MlaDecodeAttentionCuda), so no split ends in a partly used iteration, and the granule of
// PlanDecodeSplits, so both modes cut the same way for the longest query.
inline constexpr int kDecodeSplitGranule = 64;

struct DecodeKeyRange {
  int32_t begin = 0;  // visible keys [begin, end) of one split
  int32_t end = 0;
};

// The visible keys of split `split` (of num_splits) for a query that sees `n` keys:
//  * num_splits 1: all of them;
//  * keys_per_split > 0 (explicit, PlanDecodeSplits): split i takes
//    [i·keys_per_split, (i + 1)·keys_per_split) and the last one the rest;
//  * keys_per_split 0 (balanced, for CUDA graphs: num_splits stays fixed while contexts grow):
//    each query splits its own n keys, per = ceil(n / num_splits) rounded up to a multiple of
//    kDecodeSplitGranule, split i takes [i·per, min(n, (i + 1)·per)); splits past n are empty.
// An empty split has lse −inf and adds nothing to the merge.
RAMI_HOST_DEVICE inline DecodeKeyRange DecodeSplitKeys(int32_t n, int split, int num_splits,
                                                       int32_t keys_per_split) {
  if (num_splits <= 1) return {0, n};
  int64_t per = keys_per_split;
  if (per <= 0) {
    per = (static_cast<int64_t>(n) + num_splits - 1) / num_splits;
    per = (per + kDecodeSplitGranule - 1) / kDecodeSplitGranule * kDecodeSplitGranule;
  }
  const int64_t begin = static_cast<int64_t>(split) * per;
  DecodeKeyRange r;
  r.begin = static_cast<int32_t>(begin < n ? begin : n);
  const int64_t end = begin + per;
  r.end =
      keys_per_split > 0 && split == num_splits - 1 ? n : static_cast<int32_t>(end < n ? end : n);
  return r;
}

struct DecodeAttentionParams {
  KvCacheCudaView cache;
  const void* q = nullptr;  // [num_tokens, num_q_heads, head_dim] cache dtype
  void* out = nullptr;      // [num_tokens, num_q_heads, head_dim] cache dtype
  // [num_tokens] stream of KV head 0; < 0: a padding token (zero output, see above)
  const int32_t* token_stream = nullptr;
  const int32_t* positions = nullptr;  // [num_tokens]; a padding token's entry is ignored
  int num_tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  float scale = 1.0f;  // 1/sqrt(head_dim)
  // Split-KV (DecodeSplitKeys). num_splits 1: no workspace, the block writes `out`.
  int num_splits = 1;
  // With num_splits > 1: > 0, visible keys per split (PlanDecodeSplits); 0, balanced: each
  // query cuts its own visible keys into num_splits near-equal 64-key-aligned ranges.
  int keys_per_split = 0;
  float* partial_out = nullptr;  // [num_tokens, num_q_heads, num_splits, head_dim] fp32
  float* partial_lse = nullptr;  // [num_tokens, num_q_heads, num_splits] fp32
};

struct DecodeSplitPlan {
  int num_splits = 1;
  int keys_per_split = 0;
};

// Splits so that about two blocks per SM run when the batch alone gives fewer, never splits
// below 256 keys. max_visible_keys: the longest query's visible-key bound (kept + window) —
// keys past a query's own count are skipped, so a bound is enough. A CUDA graph, whose launch
// shape is frozen at capture while contexts grow, keeps its num_splits and passes
// keys_per_split 0 (balanced) instead.
DecodeSplitPlan PlanDecodeSplits(int64_t max_visible_keys, int num_tokens, int num_kv_heads,
                                 int num_sms);

struct PrefillTile {
  int32_t first_token = 0;  // index into the step's tokens
  int32_t num_tokens = 0;   // ≤ PrefillTileTokens(group), all of one chunk (one stream)
};

struct PrefillAttentionParams {
  KvCacheCudaView cache;
  const void* q = nullptr;                // [num_tokens, num_q_heads, head_dim] cache dtype
  void* out = nullptr;                    // [num_tokens, num_q_heads, head_dim] cache dtype
  const int32_t* token_stream = nullptr;  // [num_tokens]
  const int32_t* positions = nullptr;     // [num_tokens]
  const PrefillTile* tiles = nullptr;     // [num_tiles] (device memory)
  int num_tiles = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  float scale = 1.0f;
};

// Query rows (token × head of a group) per prefill block, and tokens per tile for group G.
inline constexpr int PrefillTileRows() { return 64; }
inline constexpr int PrefillTileTokens(int group) { return PrefillTileRows() / group; }
// Cuts chunks [first, first + length) (each one sequence's consecutive tokens) into tiles.
std::vector<PrefillTile> PlanPrefillTiles(const std::vector<int32_t>& chunk_first,
                                          const std::vector<int32_t>& chunk_length, int group);

cudaError_t DecodeAttentionCuda(const DecodeAttentionParams& p, cudaStream_t stream);
cudaError_t PrefillAttentionCuda(const PrefillAttentionParams& p, cudaStream_t stream);

}  // namespace rami::kernels
