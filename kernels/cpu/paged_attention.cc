// CPU twin of paged attention over kept + window lists: one query head at a time, two
// passes over the visible slots (scores, then softmax-weighted values), fp32 with a double
// normaliser.
#include "kernels/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace rami::kernels {
namespace {

// Address of slot `slot` of the page list starting at page_table[list_start].
template <typename T>
inline T* SlotPtr(const KvStreamsView& c, T* pool, int32_t list_start, int32_t slot) {
  const int32_t page = c.page_table[list_start + slot / c.page_size];
  return pool + (static_cast<int64_t>(page) * c.page_size + slot % c.page_size) * c.head_dim;
}

}  // namespace

void KvWriteCpu(const KvWriteParams& p) {
  const KvStreamsView& c = p.cache;
  for (int t = 0; t < p.num_tokens; ++t) {
    if (p.token_stream[t] < 0) continue;  // a padding token writes nothing
    const int32_t pos = p.positions[t];
    for (int h = 0; h < p.num_kv_heads; ++h) {
      const int32_t s = p.token_stream[t] + h;
      const int32_t slot = pos - c.window_base[s];
      const int64_t src = (static_cast<int64_t>(t) * p.num_kv_heads + h) * c.head_dim;
      std::memcpy(SlotPtr(c, c.k_pool, c.window_page_start[s], slot), p.k + src,
                  sizeof(float) * c.head_dim);
      if (p.v != nullptr) {
        std::memcpy(SlotPtr(c, c.v_pool, c.window_page_start[s], slot), p.v + src,
                    sizeof(float) * c.head_dim);
      }
      if (p.alpha != nullptr && pos > 0) {
        // α of token t decides the fate of token t − 1 (the α of token 0 is discarded).
        c.window_flags[s][(slot - 1) * c.window_flag_stride] =
            p.alpha[static_cast<int64_t>(t) * p.num_kv_heads + h];
      }
    }
  }
}

void PagedAttentionCpu(const PagedAttentionParams& p) {
  const KvStreamsView& c = p.cache;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int d = c.head_dim;
  std::vector<const float*> keys, values;  // the visible slots of the current stream
  std::vector<float> scores;
  std::vector<double> acc(d);
  for (int t = 0; t < p.num_tokens; ++t) {
    if (p.token_stream[t] < 0) {  // a padding token sees no key: zero rows
      std::fill_n(p.out + static_cast<int64_t>(t) * p.num_q_heads * d,
                  static_cast<int64_t>(p.num_q_heads) * d, 0.0f);
      continue;
    }
    const int32_t pos = p.positions[t];
    for (int kh = 0; kh < p.num_kv_heads; ++kh) {
      const int32_t s = p.token_stream[t] + kh;
      keys.clear();
      values.clear();
      for (int32_t j = 0; j < c.kept_count[s]; ++j) {
        keys.push_back(SlotPtr<const float>(c, c.k_pool, c.kept_page_start[s], j));
        values.push_back(SlotPtr<const float>(c, c.v_pool, c.kept_page_start[s], j));
      }
      const uint8_t* flags = c.window_flags != nullptr ? c.window_flags[s] : nullptr;
      for (int32_t k = c.window_start[s]; k <= pos; ++k) {
        const int32_t slot = k - c.window_base[s];
        if (pos - k > c.window && flags != nullptr && flags[slot * c.window_flag_stride] != 0) {
          continue;  // evicted
        }
        keys.push_back(SlotPtr<const float>(c, c.k_pool, c.window_page_start[s], slot));
        values.push_back(SlotPtr<const float>(c, c.v_pool, c.window_page_start[s], slot));
      }
      scores.resize(keys.size());
      for (int qh = kh * group; qh < (kh + 1) * group; ++qh) {
        const float* q = p.q + (static_cast<int64_t>(t) * p.num_q_heads + qh) * d;
        float max_score = -INFINITY;
        for (size_t j = 0; j < keys.size(); ++j) {
          float dot = 0.0f;
          for (int i = 0; i < d; ++i) dot += q[i] * keys[j][i];
          scores[j] = dot * p.scale;
          max_score = std::max(max_score, scores[j]);
        }
        double denom = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (size_t j = 0; j < keys.size(); ++j) {
          const double w = std::exp(static_cast<double>(scores[j]) - max_score);
          denom += w;
          for (int i = 0; i < d; ++i) acc[i] += w * values[j][i];
        }
        float* out = p.out + (static_cast<int64_t>(t) * p.num_q_heads + qh) * d;
        for (int i = 0; i < d; ++i)
          out[i] = keys.empty() ? 0.0f : static_cast<float>(acc[i] / denom);
      }
    }
  }
}

}  // namespace rami::kernels
