// CPU twin of absorbed MLA attention: per token, gather the stream's visible rows once, then
// per head two passes (scores, softmax-weighted latents), fp32 with a double normaliser.
#include "kernels/mla_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace rami::kernels {

void MlaAttentionCpu(const MlaAttentionParams& p) {
  const KvStreamsView& c = p.cache;
  const int row_dim = c.head_dim;  // latent_dim + rope_dim
  std::vector<const float*> rows;
  std::vector<float> scores;
  std::vector<double> acc(p.latent_dim);
  auto slot = [&](int32_t list_start, int32_t i) {
    const int32_t page = c.page_table[list_start + i / c.page_size];
    return c.k_pool + (static_cast<int64_t>(page) * c.page_size + i % c.page_size) * row_dim;
  };
  for (int t = 0; t < p.num_tokens; ++t) {
    const int32_t s = p.token_stream[t];
    if (s < 0) {  // a padding token (paged_attention.h) sees no row: zero outputs
      std::fill_n(p.out + static_cast<int64_t>(t) * p.num_heads * p.latent_dim,
                  static_cast<int64_t>(p.num_heads) * p.latent_dim, 0.0f);
      continue;
    }
    const int32_t pos = p.positions[t];
    rows.clear();
    for (int32_t j = 0; j < c.kept_count[s]; ++j) rows.push_back(slot(c.kept_page_start[s], j));
    const uint8_t* flags = c.window_flags != nullptr ? c.window_flags[s] : nullptr;
    for (int32_t k = c.window_start[s]; k <= pos; ++k) {
      const int32_t i = k - c.window_base[s];
      if (pos - k > c.window && flags != nullptr && flags[i * c.window_flag_stride] != 0) {
        continue;  // evicted
      }
      rows.push_back(slot(c.window_page_start[s], i));
    }
    scores.resize(rows.size());
    for (int h = 0; h < p.num_heads; ++h) {
      const float* q = p.q + (static_cast<int64_t>(t) * p.num_heads + h) * row_dim;
      float max_score = -INFINITY;
      for (size_t j = 0; j < rows.size(); ++j) {
        float dot = 0.0f;
        for (int i = 0; i < row_dim; ++i) dot += q[i] * rows[j][i];
        scores[j] = dot * p.scale;
        max_score = std::max(max_score, scores[j]);
      }
      double denom = 0.0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (size_t j = 0; j < rows.size(); ++j) {
        const double w = std::exp(static_cast<double>(scores[j]) - max_score);
        denom += w;
        for (int i = 0; i < p.latent_dim; ++i) acc[i] += w * rows[j][i];
      }
      float* out = p.out + (static_cast<int64_t>(t) * p.num_heads + h) * p.latent_dim;
      for (int i = 0; i < p.latent_dim; ++i) {
        out[i] = rows.empty() ? 0.0f : static_cast<float>(acc[i] / denom);
      }
    }
  }
}

}  // namespace rami::kernels
