// Device params of attention over the DMS-layout paged cache (dms.md §3–4; view in
// kv_cache_view.h). Both kernels give PagedAttentionCpu's results (kernels/paged_attention.h):
// query t at position pos sees every kept token and every window position p ≤ pos with
// pos − p ≤ W or flag(p) = 0; softmax in fp32; dense = the same with W ≥ any length.
//
//  * Decode (DecodeAttentionCuda): one block per (query token, KV head, split) reads each
//    visible KV slot once for all G = num_q_heads / num_kv_heads query heads of its group.
//    Split-KV: with num_splits > 1, split i covers visible keys [i·keys_per_split, …) of
//    every query; partial outputs and log-sum-exps go to the fp32 workspace and a merge
//    kernel combines them. Queries may come from any streams (one per token).
//  * Prefill (PrefillAttentionCuda): tiles of consecutive query tokens of one chunk (same
//    stream, PlanPrefillTiles), each block loading a tile of 32 keys once for all
//    PrefillTileRows() query rows (tokens × heads of the group), online softmax. Serves chunked
//    prefill over an existing cache (kept + window from earlier steps) as well.
// Supported: head_dim 64 and 128, G ≤ kAttentionMaxGroup, bf16 or fp32 pools and q/out.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/kv_cache_view.h"

namespace rami::kernels {

inline constexpr int kAttentionMaxGroup = 8;

struct DecodeAttentionParams {
  KvCacheCudaView cache;
  const void* q = nullptr;                // [num_tokens, num_q_heads, head_dim] cache dtype
  void* out = nullptr;                    // [num_tokens, num_q_heads, head_dim] cache dtype
  const int32_t* token_stream = nullptr;  // [num_tokens] stream of KV head 0
  const int32_t* positions = nullptr;     // [num_tokens]
  int num_tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  float scale = 1.0f;  // 1/sqrt(head_dim)
  // Split-KV (PlanDecodeSplits). num_splits 1: no workspace, the block writes `out`.
  int num_splits = 1;
  int keys_per_split = 0;        // visible keys per split (num_splits > 1)
  float* partial_out = nullptr;  // [num_tokens, num_q_heads, num_splits, head_dim] fp32
  float* partial_lse = nullptr;  // [num_tokens, num_q_heads, num_splits] fp32
};

struct DecodeSplitPlan {
  int num_splits = 1;
  int keys_per_split = 0;
};

// Splits so that about two blocks per SM run when the batch alone gives fewer, never splits
// below 256 keys. max_visible_keys: the longest query's visible-key bound (kept + window) —
// keys past a query's own count are skipped, so a bound is enough.
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
