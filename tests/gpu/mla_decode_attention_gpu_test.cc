// Absorbed MLA decode attention over the DMS cache: MlaDecodeAttentionCuda (one pass, planned
// split-KV, forced uneven splits and balanced splits 1/2/7/64) against MlaAttentionCpu, in fp32
// and bf16, over batches 1/3/17, heads 1/3/16/128 (several head blocks, a partial one), rows
// 512 + 64 (DeepSeek-V3) and 32 + 8 (the goldens), lengths 1/7/513/4099, page sizes 3/16/64,
// dms and dense. Every element within tolerance and the cosine distance < 1e-5. Padding tokens
// (stream −1) give rows of exact zeros. Skips without a GPU.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/mla_attention.h"
#include "tests/gpu/dms_cache_builder.h"
#include "tests/gpu/gpu_test_util.h"

namespace rami {
namespace {

using gpu_test::DecodeSeqs;
using gpu_test::DeviceArray;
using kernels::DeviceDType;

// Output and workspace buffers start as garbage (a large finite value in every element, as a
// replayed graph's buffers hold the last step's values), so every element the test reads —
// padding rows, empty splits' lse — must have been written by the kernel.
template <typename T>
std::vector<T> Garbage(size_t count) {
  if constexpr (sizeof(T) == 1) {
    return std::vector<T>(count, 0x7f);  // bf16 0x7f7f, fp32 0x7f7f7f7f: ~3.4e38
  } else {
    return std::vector<T>(count, static_cast<T>(3.0e30));
  }
}

struct Case {
  int batch, heads, latent, rope, page_size;
  bool dense;
  int32_t window;
};

std::string Describe(DeviceDType dtype, const Case& c, const kernels::DecodeSplitPlan& plan) {
  return std::string(gpu_test::Name(dtype)) + " batch " + std::to_string(c.batch) + " heads " +
         std::to_string(c.heads) + " row " + std::to_string(c.latent) + "+" +
         std::to_string(c.rope) + " page " + std::to_string(c.page_size) +
         (c.dense ? " dense" : " W " + std::to_string(c.window)) + " splits " +
         std::to_string(plan.num_splits) + " per " + std::to_string(plan.keys_per_split);
}

// The step's tokens with padding tokens (stream −1) mixed in, as a decode graph captured for a
// larger batch bucket runs them: one first, one after every third real token, two last.
// real_row[i]: the padded row of real token i. A padding token's position is 4098, a real
// position of sequence 0 (stream 0).
struct PaddedTokens {
  std::vector<int32_t> token_stream, positions, real_row;
};
PaddedTokens Pad(const gpu_test::QueryTokens& tokens) {
  PaddedTokens p;
  auto pad = [&] {
    p.token_stream.push_back(-1);
    p.positions.push_back(4098);
  };
  pad();
  for (size_t i = 0; i < tokens.positions.size(); ++i) {
    p.real_row.push_back(static_cast<int32_t>(p.positions.size()));
    p.token_stream.push_back(tokens.token_stream[i]);
    p.positions.push_back(tokens.positions[i]);
    if (i % 3 == 2) pad();
  }
  pad();
  pad();
  return p;
}

// Host planning (runs without a device): head blocks cover every head, and MLA splits cover
// every visible key as the GQA plan's do, counting head blocks as the batch's blocks.
TEST(MlaDecodePlan, HeadBlocksAndSplitsCoverTheWork) {
  for (int heads : {1, 3, 16, 17, 128}) {
    const int blocks = kernels::MlaHeadBlocks(heads);
    EXPECT_GE(blocks * kernels::kMlaHeadsPerBlock, heads);
    EXPECT_LT((blocks - 1) * kernels::kMlaHeadsPerBlock, heads);
    for (int64_t keys : {1, 513, 4099, 131072}) {
      for (int tokens : {1, 17, 256}) {
        const kernels::DecodeSplitPlan plan =
            kernels::PlanMlaDecodeSplits(keys, tokens, heads, 132);
        ASSERT_GE(plan.num_splits, 1);
        if (plan.num_splits == 1) continue;
        EXPECT_GE(static_cast<int64_t>(plan.num_splits) * plan.keys_per_split, keys);
        EXPECT_LT(static_cast<int64_t>(plan.num_splits - 1) * plan.keys_per_split, keys);
      }
    }
  }
}

TEST(MlaDecodeAttentionGpu, MatchesCpuTwin) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  int num_sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  std::mt19937 rng(47);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const Case cases[] = {
      {1, 16, 512, 64, 16, false, 512}, {3, 128, 512, 64, 64, false, 64},
      {17, 16, 512, 64, 3, true, 0},    {1, 128, 512, 64, 64, true, 0},
      {17, 1, 32, 8, 16, false, 16},    {3, 3, 32, 8, 3, true, 0},
      {17, 20, 32, 8, 64, false, 7},
  };
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (const Case& c : cases) {
      const int row = c.latent + c.rope;
      const std::vector<gpu_test::SeqSpec> seqs = DecodeSeqs(c.batch);
      gpu_test::SyntheticCache cache({.page_size = c.page_size,
                                      .head_dim = row,
                                      .num_kv_heads = 1,
                                      .dense = c.dense,
                                      .window = c.window,
                                      .dtype = dtype},
                                     seqs, rng);
      const gpu_test::QueryTokens tokens = gpu_test::MakeQueryTokens(seqs, 1);
      const int num_tokens = static_cast<int>(tokens.positions.size());
      std::vector<float> q(static_cast<size_t>(num_tokens) * c.heads * row);
      for (float& x : q) x = 2.0f * normal(rng);
      q = gpu_test::Quantize(q, dtype);
      // 1/sqrt(row) keeps the scores' spread (~2) as peaky as the GQA test's.
      const float scale = 1.0f / std::sqrt(static_cast<float>(row));
      std::vector<float> expected(static_cast<size_t>(num_tokens) * c.heads * c.latent);
      kernels::MlaAttentionCpu({.cache = cache.CpuView(),
                                .q = q.data(),
                                .out = expected.data(),
                                .token_stream = tokens.token_stream.data(),
                                .positions = tokens.positions.data(),
                                .num_tokens = num_tokens,
                                .num_heads = c.heads,
                                .latent_dim = c.latent,
                                .scale = scale});

      DeviceArray<uint8_t> dq(gpu_test::Encode(q, dtype));
      DeviceArray<int32_t> dstream(tokens.token_stream), dpos(tokens.positions);
      const kernels::DecodeSplitPlan planned =
          kernels::PlanMlaDecodeSplits(cache.MaxVisibleKeys(seqs), num_tokens, c.heads, num_sms);
      // One pass, planned, forced uneven, and balanced (keys_per_split 0: each query cuts its
      // own keys; 64 splits is more than the short sequences' keys, so most are empty).
      const kernels::DecodeSplitPlan plans[] = {{},
                                                planned,
                                                {.num_splits = 5, .keys_per_split = 96},
                                                {.num_splits = 1, .keys_per_split = 0},
                                                {.num_splits = 2, .keys_per_split = 0},
                                                {.num_splits = 7, .keys_per_split = 0},
                                                {.num_splits = 64, .keys_per_split = 0}};
      for (const kernels::DecodeSplitPlan& plan : plans) {
        DeviceArray<uint8_t> dout(Garbage<uint8_t>(expected.size() * DeviceDTypeSize(dtype)));
        DeviceArray<float> partial_out(Garbage<float>(expected.size() * plan.num_splits));
        DeviceArray<float> partial_lse(
            Garbage<float>(static_cast<size_t>(num_tokens) * c.heads * plan.num_splits));
        ASSERT_EQ(kernels::MlaDecodeAttentionCuda({.cache = cache.CudaView(),
                                                   .q = dq.get(),
                                                   .out = dout.get(),
                                                   .token_stream = dstream.get(),
                                                   .positions = dpos.get(),
                                                   .num_tokens = num_tokens,
                                                   .num_heads = c.heads,
                                                   .latent_dim = c.latent,
                                                   .scale = scale,
                                                   .num_splits = plan.num_splits,
                                                   .keys_per_split = plan.keys_per_split,
                                                   .partial_out = partial_out.get(),
                                                   .partial_lse = partial_lse.get()},
                                                  nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what = Describe(dtype, c, plan);
        const std::vector<float> got = gpu_test::Decode(dout.ToHost(), dtype);
        EXPECT_TRUE(testing::AllClose(got, expected, gpu_test::ToleranceFor(dtype), what));
        EXPECT_LT(gpu_test::CosineDistance(got, expected), 1e-5) << what;
      }
    }
  }
}

// Padding tokens see no key: their output rows are exactly 0 (their q rows are NaN, which
// must never be read into a result), in one pass and with explicit and balanced splits, and
// the real tokens' rows still match MlaAttentionCpu over the real tokens alone.
TEST(MlaDecodeAttentionGpu, PaddingTokensGiveZeroRows) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(43);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const Case cases[] = {
      {3, 16, 512, 64, 16, false, 512}, {17, 20, 32, 8, 64, false, 7}, {1, 3, 32, 8, 3, true, 0}};
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (const Case& c : cases) {
      const int row = c.latent + c.rope;
      const std::vector<gpu_test::SeqSpec> seqs = DecodeSeqs(c.batch);
      gpu_test::SyntheticCache cache({.page_size = c.page_size,
                                      .head_dim = row,
                                      .num_kv_heads = 1,
                                      .dense = c.dense,
                                      .window = c.window,
                                      .dtype = dtype},
                                     seqs, rng);
      const gpu_test::QueryTokens tokens = gpu_test::MakeQueryTokens(seqs, 1);
      const int num_real = static_cast<int>(tokens.positions.size());
      const size_t q_row = static_cast<size_t>(c.heads) * row;
      const size_t out_row = static_cast<size_t>(c.heads) * c.latent;
      std::vector<float> q(num_real * q_row);
      for (float& x : q) x = 2.0f * normal(rng);
      q = gpu_test::Quantize(q, dtype);
      const float scale = 1.0f / std::sqrt(static_cast<float>(row));
      std::vector<float> expected_real(num_real * out_row);
      kernels::MlaAttentionCpu({.cache = cache.CpuView(),
                                .q = q.data(),
                                .out = expected_real.data(),
                                .token_stream = tokens.token_stream.data(),
                                .positions = tokens.positions.data(),
                                .num_tokens = num_real,
                                .num_heads = c.heads,
                                .latent_dim = c.latent,
                                .scale = scale});

      const PaddedTokens padded = Pad(tokens);
      const int num_tokens = static_cast<int>(padded.positions.size());
      std::vector<float> q_padded(num_tokens * q_row, std::nanf(""));
      std::vector<float> expected(num_tokens * out_row, 0.0f);
      std::vector<bool> is_padding(num_tokens, true);
      for (int i = 0; i < num_real; ++i) {
        const size_t t = padded.real_row[i];
        std::copy_n(q.begin() + i * q_row, q_row, q_padded.begin() + t * q_row);
        std::copy_n(expected_real.begin() + i * out_row, out_row, expected.begin() + t * out_row);
        is_padding[t] = false;
      }
      DeviceArray<uint8_t> dq(gpu_test::Encode(q_padded, dtype));
      DeviceArray<int32_t> dstream(padded.token_stream), dpos(padded.positions);
      const kernels::DecodeSplitPlan plans[] = {
          {}, {.num_splits = 3, .keys_per_split = 96}, {.num_splits = 7, .keys_per_split = 0}};
      for (const kernels::DecodeSplitPlan& plan : plans) {
        DeviceArray<uint8_t> dout(Garbage<uint8_t>(expected.size() * DeviceDTypeSize(dtype)));
        DeviceArray<float> partial_out(Garbage<float>(expected.size() * plan.num_splits));
        DeviceArray<float> partial_lse(
            Garbage<float>(static_cast<size_t>(num_tokens) * c.heads * plan.num_splits));
        ASSERT_EQ(kernels::MlaDecodeAttentionCuda({.cache = cache.CudaView(),
                                                   .q = dq.get(),
                                                   .out = dout.get(),
                                                   .token_stream = dstream.get(),
                                                   .positions = dpos.get(),
                                                   .num_tokens = num_tokens,
                                                   .num_heads = c.heads,
                                                   .latent_dim = c.latent,
                                                   .scale = scale,
                                                   .num_splits = plan.num_splits,
                                                   .keys_per_split = plan.keys_per_split,
                                                   .partial_out = partial_out.get(),
                                                   .partial_lse = partial_lse.get()},
                                                  nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what = Describe(dtype, c, plan) + " padded";
        const std::vector<float> got = gpu_test::Decode(dout.ToHost(), dtype);
        for (int t = 0; t < num_tokens; ++t) {
          if (!is_padding[t]) continue;
          for (size_t i = 0; i < out_row; ++i) {
            ASSERT_EQ(got[t * out_row + i], 0.0f)
                << what << " padding token " << t << " value " << i;
          }
        }
        EXPECT_TRUE(testing::AllClose(got, expected, gpu_test::ToleranceFor(dtype), what));
        EXPECT_LT(gpu_test::CosineDistance(got, expected), 1e-5) << what;
      }
    }
  }
}

// A batch gives each token bitwise the result it gets alone, and bad shapes are refused
// before any launch.
TEST(MlaDecodeAttentionGpu, BatchEqualsSingleTokenAndRejectsBadShapes) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(59);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr int kLatent = 512, kRow = 576, kHeads = 16;
  const DeviceDType dtype = DeviceDType::kBF16;
  const std::vector<gpu_test::SeqSpec> seqs = DecodeSeqs(17);
  gpu_test::SyntheticCache cache(
      {.page_size = 16, .head_dim = kRow, .num_kv_heads = 1, .window = 64, .dtype = dtype}, seqs,
      rng);
  const gpu_test::QueryTokens tokens = gpu_test::MakeQueryTokens(seqs, 1);
  const int num_tokens = static_cast<int>(tokens.positions.size());
  std::vector<float> q(static_cast<size_t>(num_tokens) * kHeads * kRow);
  for (float& x : q) x = normal(rng);
  const size_t q_bytes = static_cast<size_t>(kHeads) * kRow * 2;
  const size_t out_bytes = static_cast<size_t>(kHeads) * kLatent * 2;
  DeviceArray<uint8_t> dq(gpu_test::Encode(q, dtype));
  DeviceArray<uint8_t> batch_out(num_tokens * out_bytes), single_out(num_tokens * out_bytes);
  DeviceArray<int32_t> dstream(tokens.token_stream), dpos(tokens.positions);
  kernels::MlaDecodeAttentionParams p{.cache = cache.CudaView(),
                                      .q = dq.get(),
                                      .out = batch_out.get(),
                                      .token_stream = dstream.get(),
                                      .positions = dpos.get(),
                                      .num_tokens = num_tokens,
                                      .num_heads = kHeads,
                                      .latent_dim = kLatent,
                                      .scale = 0.05f};
  ASSERT_EQ(kernels::MlaDecodeAttentionCuda(p, nullptr), cudaSuccess);
  for (int t = 0; t < num_tokens; ++t) {
    kernels::MlaDecodeAttentionParams one = p;
    one.q = dq.get() + t * q_bytes;
    one.out = single_out.get() + t * out_bytes;
    one.token_stream = dstream.get() + t;
    one.positions = dpos.get() + t;
    one.num_tokens = 1;
    ASSERT_EQ(kernels::MlaDecodeAttentionCuda(one, nullptr), cudaSuccess);
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_TRUE(batch_out.ToHost() == single_out.ToHost());

  kernels::MlaDecodeAttentionParams bad = p;
  bad.latent_dim = kRow + 1;
  EXPECT_EQ(kernels::MlaDecodeAttentionCuda(bad, nullptr), cudaErrorInvalidValue);
  bad = p;
  bad.num_splits = 2;  // no workspace
  EXPECT_EQ(kernels::MlaDecodeAttentionCuda(bad, nullptr), cudaErrorInvalidValue);
  DeviceArray<float> partial_out(static_cast<size_t>(num_tokens) * kHeads * 2 * kLatent);
  DeviceArray<float> partial_lse(static_cast<size_t>(num_tokens) * kHeads * 2);
  bad.partial_out = partial_out.get();
  bad.partial_lse = partial_lse.get();
  bad.keys_per_split = -1;  // 0 is balanced, a negative count is nothing
  EXPECT_EQ(kernels::MlaDecodeAttentionCuda(bad, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace rami
