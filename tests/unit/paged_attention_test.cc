// Paged attention and KV writes against dense fp64 attention over the same keys and values,
// with pages handed out in shuffled order, page sizes {1, 3, 16}, GQA groups {1, 4}.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/paged_attention.h"
#include "tests/testing/compare.h"

namespace rami {
namespace {

struct Case {
  int page_size;
  int group;
};

class PagedAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(PagedAttentionTest, MatchesDenseReference) {
  const auto [page_size, group] = GetParam();
  const int kv_heads = 2, q_heads = kv_heads * group, dim = 17;
  const std::vector<int> lengths = {1, 5, 40};  // tokens cached per sequence
  std::mt19937 rng(page_size * 100 + group);
  std::normal_distribution<float> normal(0.0f, 1.0f);

  // Streams: sequence s, KV head h → stream s·kv_heads + h, pages from a shuffled pool.
  const int num_streams = static_cast<int>(lengths.size()) * kv_heads;
  int total_pages = 0;
  for (int len : lengths) total_pages += kv_heads * ((len + page_size - 1) / page_size);
  std::vector<int32_t> ids(total_pages + 7);  // spare pages stay unused
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> page_table, stream_start;
  int next = 0;
  for (int len : lengths) {
    for (int h = 0; h < kv_heads; ++h) {
      stream_start.push_back(static_cast<int32_t>(page_table.size()));
      for (int p = 0; p < (len + page_size - 1) / page_size; ++p) page_table.push_back(ids[next++]);
    }
  }
  ASSERT_EQ(static_cast<int>(stream_start.size()), num_streams);
  std::vector<float> k_pool(ids.size() * page_size * dim, NAN), v_pool(k_pool.size(), NAN);
  kernels::KvPagesView view{k_pool.data(),       v_pool.data(), page_table.data(),
                            stream_start.data(), page_size,     dim};

  // Write every token of every sequence (one token per row, as a prefill would).
  std::vector<std::vector<float>> keys(lengths.size()), values(lengths.size());
  std::vector<int32_t> token_stream, token_slot;
  std::vector<float> k_rows, v_rows;
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (int j = 0; j < lengths[s]; ++j) {
      token_stream.push_back(static_cast<int32_t>(s * kv_heads));
      token_slot.push_back(j);
      for (int i = 0; i < kv_heads * dim; ++i) {
        keys[s].push_back(normal(rng));
        values[s].push_back(normal(rng));
      }
    }
    k_rows.insert(k_rows.end(), keys[s].begin(), keys[s].end());
    v_rows.insert(v_rows.end(), values[s].begin(), values[s].end());
  }
  kernels::KvWriteCpu({.cache = view,
                       .k = k_rows.data(),
                       .v = v_rows.data(),
                       .token_stream = token_stream.data(),
                       .token_slot = token_slot.data(),
                       .num_tokens = static_cast<int>(token_stream.size()),
                       .num_kv_heads = kv_heads});

  // Queries: for each sequence, one query per visible length 1..len (a causal prefill).
  std::vector<int32_t> q_stream, q_len, q_seq;
  for (size_t s = 0; s < lengths.size(); ++s) {
    for (int len = 1; len <= lengths[s]; ++len) {
      q_stream.push_back(static_cast<int32_t>(s * kv_heads));
      q_len.push_back(len);
      q_seq.push_back(static_cast<int32_t>(s));
    }
  }
  const int tokens = static_cast<int>(q_len.size());
  std::vector<float> q(static_cast<size_t>(tokens) * q_heads * dim);
  for (float& x : q) x = normal(rng);
  std::vector<float> out(q.size()), ref(q.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  kernels::PagedAttentionCpu({.cache = view,
                              .q = q.data(),
                              .out = out.data(),
                              .token_stream = q_stream.data(),
                              .token_kv_len = q_len.data(),
                              .num_tokens = tokens,
                              .num_q_heads = q_heads,
                              .num_kv_heads = kv_heads,
                              .scale = scale});
  for (int t = 0; t < tokens; ++t) {
    const std::vector<float>& k = keys[q_seq[t]];
    const std::vector<float>& v = values[q_seq[t]];
    for (int qh = 0; qh < q_heads; ++qh) {
      const int h = qh / group;
      const float* qv = &q[(static_cast<size_t>(t) * q_heads + qh) * dim];
      std::vector<double> w(q_len[t]);
      double max_w = -INFINITY, denom = 0;
      for (int j = 0; j < q_len[t]; ++j) {
        double dot = 0;
        for (int i = 0; i < dim; ++i)
          dot += static_cast<double>(qv[i]) * k[(j * kv_heads + h) * dim + i];
        w[j] = dot * scale;
        max_w = std::max(max_w, w[j]);
      }
      for (double& x : w) denom += (x = std::exp(x - max_w));
      for (int i = 0; i < dim; ++i) {
        double acc = 0;
        for (int j = 0; j < q_len[t]; ++j) acc += w[j] * v[(j * kv_heads + h) * dim + i];
        ref[(static_cast<size_t>(t) * q_heads + qh) * dim + i] = static_cast<float>(acc / denom);
      }
    }
  }
  EXPECT_TRUE(testing::AllClose(out, ref, {.atol = 1e-5, .rtol = 1e-5}));
}

INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionTest,
                         ::testing::Values(Case{1, 1}, Case{1, 4}, Case{3, 1}, Case{3, 4},
                                           Case{16, 1}, Case{16, 4}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return "page" + std::to_string(info.param.page_size) + "_group" +
                                  std::to_string(info.param.group);
                         });

}  // namespace
}  // namespace rami
