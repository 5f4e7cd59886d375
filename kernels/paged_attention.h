// Attention over the DMS-layout paged KV cache, and the write of new keys/values into it.
//
// Layout (docs/dms.md §4): K and V live in two pools of fixed-size pages,
// [num_pages, page_size, head_dim]. A *stream* is the key sequence of one (sequence, layer,
// KV head) and has two page lists:
//   kept:   a compact list of tokens that left the window with flag 0 — always visible;
//           slot j at page page_table[kept_page_start[s] + j / page_size].
//   window: the newest tokens in position order; window slot i holds position
//           window_base[s] + i, at page page_table[window_page_start[s] + i / page_size].
//           Positions before window_start[s] have left the window.
// Visibility (dms.md §3): query at position t sees window position p ≤ t iff
// t − p ≤ window or the flag of window slot p − window_base[s] is 0 (flag 1 = evicted later);
// slot i's flag is window_flags[s][i · window_flag_stride] (the host cache keeps a sequence's
// flags position-major: one row of all its streams per position, worker/kv/stream_rows.h).
// Dense is the same layout with an infinite window and no flags.
// The streams of one (sequence, layer) are consecutive: KV head h of a token uses stream
// token_stream[t] + h. Query head q reads KV head q / (num_q_heads / num_kv_heads) (GQA).
// A negative token_stream[t] is a padding token (a CUDA graph's batch bucket, as the CUDA
// kernels take it): KvWriteCpu writes nothing for it, PagedAttentionCpu gives it zero rows.
#pragma once

#include <cstdint>

namespace rami::kernels {

struct KvStreamsView {
  float* k_pool = nullptr;                     // [num_pages, page_size, head_dim]
  float* v_pool = nullptr;                     // [num_pages, page_size, head_dim]; null: K-only
  const int32_t* page_table = nullptr;         // page ids of all streams' lists
  const int32_t* kept_page_start = nullptr;    // [num_streams] offset into page_table
  const int32_t* kept_count = nullptr;         // [num_streams] tokens in kept
  const int32_t* window_page_start = nullptr;  // [num_streams] offset into page_table
  const int32_t* window_base = nullptr;        // [num_streams] position of window slot 0
  const int32_t* window_start = nullptr;       // [num_streams] oldest position still in window
  uint8_t* const* window_flags = nullptr;  // [num_streams] → [window slots]; null: no eviction
  int64_t window_flag_stride = 1;          // bytes between the flags of consecutive slots
  int page_size = 0;
  int head_dim = 0;
  int32_t window = 0;  // W: distance within which every token is visible
};

// Writes the keys/values of new tokens into their window slots. With `alpha`, also records
// the one-token shift of DMS: token t's decision becomes the flag of position t − 1.
struct KvWriteParams {
  KvStreamsView cache;
  const float* k = nullptr;               // [num_tokens, num_kv_heads, head_dim]
  const float* v = nullptr;               // [num_tokens, num_kv_heads, head_dim]; null: K-only
  const uint8_t* alpha = nullptr;         // [num_tokens, num_kv_heads] 1 = evict, or null
  const int32_t* token_stream = nullptr;  // [num_tokens]
  const int32_t* positions = nullptr;     // [num_tokens]
  int num_tokens = 0;
  int num_kv_heads = 0;
};

struct PagedAttentionParams {
  KvStreamsView cache;
  const float* q = nullptr;               // [num_tokens, num_q_heads, head_dim]
  float* out = nullptr;                   // [num_tokens, num_q_heads, head_dim]
  const int32_t* token_stream = nullptr;  // [num_tokens]
  const int32_t* positions = nullptr;     // [num_tokens]
  int num_tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  float scale = 1.0f;  // softmax scale, 1/sqrt(head_dim)
};

void KvWriteCpu(const KvWriteParams& p);
void PagedAttentionCpu(const PagedAttentionParams& p);

}  // namespace rami::kernels
