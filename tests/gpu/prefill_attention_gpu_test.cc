// Prefill attention over the DMS cache: the tiled CUDA kernel against PagedAttentionCpu, in
// fp32 and bf16, for one-shot prefill (nothing cached before) and chunked prefill over an
// existing cache (kept + window from earlier steps, the chunk's own tokens in the window),
// chunks of 1/7/17/65/129/513 tokens, head_dim 64/128, GQA 1/4/8, page sizes 1/3/16/64, dms
// (W 1/7/64) and dense. Every element within tolerance, cosine distance < 1e-5. Skips without
// a GPU.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/paged_attention.h"
#include "tests/gpu/dms_cache_builder.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;
using gpu_test::SeqSpec;
using kernels::DeviceDType;

struct Case {
  int head_dim, kv_heads, group, page_size;
  bool dense;
  int32_t window;
  std::vector<SeqSpec> seqs;  // {length after the chunk, chunk}
};

TEST(PrefillAttentionGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(37);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<Case> cases = {
      {128, 2, 4, 16, false, 64, {{513, 513}}},
      {64, 2, 8, 3, false, 7, {{7, 7}, {530, 17}, {4099, 65}}},
      {128, 1, 1, 64, true, 0, {{4099, 129}, {1, 1}}},
      {64, 4, 4, 1, false, 1, {{40, 33}, {107, 7}, {514, 1}}},
      {128, 1, 8, 16, false, 64, {{700, 129}, {129, 129}, {3, 2}}},
  };
  // Every query-per-KV-head group (1 … kAttentionMaxGroup) at both head sizes: a tile holds
  // PrefillTileTokens(group) tokens, so the groups in between cut tiles differently.
  static_assert(kernels::kAttentionMaxGroup == 8, "extend the sweep below");
  for (int head_dim : {64, 128}) {
    for (int group = 1; group <= kernels::kAttentionMaxGroup; ++group) {
      cases.push_back({head_dim, 2, group, 16, false, 16, {{130, 67}, {20, 20}, {514, 1}}});
    }
  }
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (const Case& c : cases) {
      gpu_test::SyntheticCache cache({.page_size = c.page_size,
                                      .head_dim = c.head_dim,
                                      .num_kv_heads = c.kv_heads,
                                      .dense = c.dense,
                                      .window = c.window,
                                      .dtype = dtype},
                                     c.seqs, rng);
      const gpu_test::QueryTokens tokens = gpu_test::MakeQueryTokens(c.seqs, c.kv_heads);
      const int num_tokens = static_cast<int>(tokens.positions.size());
      const int q_heads = c.kv_heads * c.group;
      std::vector<float> q(static_cast<size_t>(num_tokens) * q_heads * c.head_dim);
      for (float& x : q) x = 2.0f * normal(rng);
      q = gpu_test::Quantize(q, dtype);
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      std::vector<float> expected(q.size());
      kernels::PagedAttentionCpu({.cache = cache.CpuView(),
                                  .q = q.data(),
                                  .out = expected.data(),
                                  .token_stream = tokens.token_stream.data(),
                                  .positions = tokens.positions.data(),
                                  .num_tokens = num_tokens,
                                  .num_q_heads = q_heads,
                                  .num_kv_heads = c.kv_heads,
                                  .scale = scale});

      const std::vector<kernels::PrefillTile> tiles =
          kernels::PlanPrefillTiles(tokens.chunk_first, tokens.chunk_length, c.group);
      DeviceArray<kernels::PrefillTile> dtiles(tiles);
      DeviceArray<uint8_t> dq(gpu_test::Encode(q, dtype));
      DeviceArray<uint8_t> dout(q.size() * DeviceDTypeSize(dtype));
      DeviceArray<int32_t> dstream(tokens.token_stream), dpos(tokens.positions);
      ASSERT_EQ(kernels::PrefillAttentionCuda({.cache = cache.CudaView(),
                                               .q = dq.get(),
                                               .out = dout.get(),
                                               .token_stream = dstream.get(),
                                               .positions = dpos.get(),
                                               .tiles = dtiles.get(),
                                               .num_tiles = static_cast<int>(tiles.size()),
                                               .num_q_heads = q_heads,
                                               .num_kv_heads = c.kv_heads,
                                               .scale = scale},
                                              nullptr),
                cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::string what = std::string(gpu_test::Name(dtype)) + " D " + std::to_string(c.head_dim) +
                         " Hkv " + std::to_string(c.kv_heads) + " G " + std::to_string(c.group) +
                         " page " + std::to_string(c.page_size) +
                         (c.dense ? " dense" : " W " + std::to_string(c.window)) + " chunks";
      for (const SeqSpec& s : c.seqs) {
        absl::StrAppend(&what, " ", s.chunk, "@", s.length - s.chunk);
      }
      const std::vector<float> got = gpu_test::Decode(dout.ToHost(), dtype);
      EXPECT_TRUE(testing::AllClose(got, expected, gpu_test::ToleranceFor(dtype), what));
      EXPECT_LT(gpu_test::CosineDistance(got, expected), 1e-5) << what;
    }
  }
}

}  // namespace
}  // namespace rami
