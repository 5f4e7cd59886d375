// Attention over a paged KV cache, and the write of new keys/values into it.
//
// Layout: K and V live in two pools of fixed-size pages, [num_pages, page_size, head_dim].
// A *stream* is the key sequence of one (sequence, layer, KV head); its pages are
// page_table[stream_page_start[s] ...] in order, and slot j of the stream is at
// page page_table[stream_page_start[s] + j / page_size], offset j % page_size.
// The streams of one (sequence, layer) are consecutive: KV head h of a token uses stream
// token_stream[t] + h. Query head q reads KV head q / (num_q_heads / num_kv_heads) (GQA).
#pragma once

#include <cstdint>

namespace rami::kernels {

struct KvPagesView {
  float* k_pool = nullptr;                     // [num_pages, page_size, head_dim]
  float* v_pool = nullptr;                     // [num_pages, page_size, head_dim]
  const int32_t* page_table = nullptr;         // flat page ids of all streams
  const int32_t* stream_page_start = nullptr;  // [num_streams] offset into page_table
  int page_size = 0;
  int head_dim = 0;
};

// Writes the keys/values of new tokens: token t, KV head h goes to slot token_slot[t] of
// stream token_stream[t] + h.
struct KvWriteParams {
  KvPagesView cache;
  const float* k = nullptr;               // [num_tokens, num_kv_heads, head_dim]
  const float* v = nullptr;               // [num_tokens, num_kv_heads, head_dim]
  const int32_t* token_stream = nullptr;  // [num_tokens]
  const int32_t* token_slot = nullptr;    // [num_tokens]
  int num_tokens = 0;
  int num_kv_heads = 0;
};

// Query t attends to slots [0, token_kv_len[t]) of its streams (causality is expressed by
// the length: a prefill token sees the prefix up to and including itself).
struct PagedAttentionParams {
  KvPagesView cache;
  const float* q = nullptr;               // [num_tokens, num_q_heads, head_dim]
  float* out = nullptr;                   // [num_tokens, num_q_heads, head_dim]
  const int32_t* token_stream = nullptr;  // [num_tokens]
  const int32_t* token_kv_len = nullptr;  // [num_tokens]
  int num_tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  float scale = 1.0f;  // softmax scale, 1/sqrt(head_dim)
};

void KvWriteCpu(const KvWriteParams& p);
void PagedAttentionCpu(const PagedAttentionParams& p);

}  // namespace rami::kernels
