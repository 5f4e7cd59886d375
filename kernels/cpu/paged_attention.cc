// CPU twin of paged attention: one query head at a time, two passes over the visible slots
// (scores, then softmax-weighted values), fp32 with a double normaliser.
#include "kernels/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace rami::kernels {
namespace {

// Address of slot `slot` of stream `stream` in `pool`.
template <typename T>
inline T* SlotPtr(const KvPagesView& c, T* pool, int32_t stream, int32_t slot) {
  const int32_t page = c.page_table[c.stream_page_start[stream] + slot / c.page_size];
  return pool + (static_cast<int64_t>(page) * c.page_size + slot % c.page_size) * c.head_dim;
}

}  // namespace

void KvWriteCpu(const KvWriteParams& p) {
  const KvPagesView& c = p.cache;
  for (int t = 0; t < p.num_tokens; ++t) {
    for (int h = 0; h < p.num_kv_heads; ++h) {
      const int32_t stream = p.token_stream[t] + h;
      const int64_t src = (static_cast<int64_t>(t) * p.num_kv_heads + h) * c.head_dim;
      std::memcpy(SlotPtr(c, c.k_pool, stream, p.token_slot[t]), p.k + src,
                  sizeof(float) * c.head_dim);
      std::memcpy(SlotPtr(c, c.v_pool, stream, p.token_slot[t]), p.v + src,
                  sizeof(float) * c.head_dim);
    }
  }
}

void PagedAttentionCpu(const PagedAttentionParams& p) {
  const KvPagesView& c = p.cache;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int d = c.head_dim;
  std::vector<float> scores;
  std::vector<double> acc(d);
  for (int t = 0; t < p.num_tokens; ++t) {
    const int32_t len = p.token_kv_len[t];
    scores.resize(len);
    for (int qh = 0; qh < p.num_q_heads; ++qh) {
      const int32_t stream = p.token_stream[t] + qh / group;
      const float* q = p.q + (static_cast<int64_t>(t) * p.num_q_heads + qh) * d;
      float max_score = -INFINITY;
      for (int32_t j = 0; j < len; ++j) {
        const float* k = SlotPtr<const float>(c, c.k_pool, stream, j);
        float dot = 0.0f;
        for (int i = 0; i < d; ++i) dot += q[i] * k[i];
        scores[j] = dot * p.scale;
        max_score = std::max(max_score, scores[j]);
      }
      double denom = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int32_t j = 0; j < len; ++j) {
        const double w = std::exp(static_cast<double>(scores[j]) - max_score);
        denom += w;
        const float* v = SlotPtr<const float>(c, c.v_pool, stream, j);
        for (int i = 0; i < d; ++i) acc[i] += w * v[i];
      }
      float* out = p.out + (static_cast<int64_t>(t) * p.num_q_heads + qh) * d;
      for (int i = 0; i < d; ++i) out[i] = len > 0 ? static_cast<float>(acc[i] / denom) : 0.0f;
    }
  }
}

}  // namespace rami::kernels
