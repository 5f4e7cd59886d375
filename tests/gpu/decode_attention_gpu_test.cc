// Decode attention over the DMS cache: the CUDA kernel (one pass, planned split-KV, forced
// uneven splits and balanced splits 1/2/7/64) against PagedAttentionCpu, in fp32 and bf16, over
// batches 1/3/17, head_dim 64/128, GQA 1/4/8, lengths 1/7/513/4099, page sizes 3/16/64, dms and
// dense. Every element within tolerance and the cosine distance < 1e-5. Padding tokens
// (stream −1) give rows of exact zeros. The split ranges are checked on the host as well. The
// GPU cases skip without a GPU.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/paged_attention.h"
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
  int batch, head_dim, kv_heads, group, page_size;
  bool dense;
  int32_t window;
};

// Host-only (runs without a device): the split ranges of DecodeSplitKeys, the rule both decode
// kernels use. Balanced (keys_per_split 0): the splits tile [0, n) in order, every non-empty
// one but the last holds the same multiple of 64 keys, none holds more than ceil(n / splits)
// rounded up to 64, and the empty ones come last. Explicit: the old rule (the last split takes
// the rest).
TEST(DecodeSplitKeys, BalancedAndExplicitSplitsTileTheKeys) {
  for (int32_t n : {0, 1, 7, 63, 64, 65, 129, 513, 4099, 131072}) {
    for (int splits : {1, 2, 7, 64, 1024}) {
      const std::string what = "n " + std::to_string(n) + " splits " + std::to_string(splits);
      const int64_t cap = ((n + splits - 1) / splits + 63) / 64 * 64;
      int32_t next = 0;
      bool seen_empty = false;
      for (int i = 0; i < splits; ++i) {
        const kernels::DecodeKeyRange r = kernels::DecodeSplitKeys(n, i, splits, 0);
        ASSERT_EQ(r.begin, next) << what << " split " << i;
        ASSERT_GE(r.end, r.begin) << what << " split " << i;
        const int32_t size = r.end - r.begin;
        if (splits > 1) {
          EXPECT_LE(size, cap) << what << " split " << i;
        }
        if (size == 0) {
          seen_empty = true;
        } else {
          EXPECT_FALSE(seen_empty) << what << ": a non-empty split after an empty one";
          if (r.end < n) {
            EXPECT_EQ(size, cap) << what << " split " << i;
          }
        }
        next = r.end;
      }
      EXPECT_EQ(next, n) << what;
      // Explicit keys per split: [i·per, (i + 1)·per), the last one up to n.
      for (int32_t per : {1, 64, 100}) {
        if (splits == 1) continue;
        for (int i = 0; i < splits; ++i) {
          const kernels::DecodeKeyRange r = kernels::DecodeSplitKeys(n, i, splits, per);
          const int64_t begin = std::min<int64_t>(n, static_cast<int64_t>(i) * per);
          const int64_t end = i == splits - 1 ? n : std::min<int64_t>(n, begin + per);
          EXPECT_EQ(r.begin, begin) << what << " per " << per << " split " << i;
          EXPECT_EQ(r.end, end) << what << " per " << per << " split " << i;
        }
      }
    }
  }
}

// The step's tokens with padding tokens (stream −1) mixed in, as a decode graph captured for a
// larger batch bucket runs them: one first, one after every third real token, two last.
// real_row[i]: the padded row of real token i. A padding token's position is 4098, a real
// position of sequence 0, whose streams are 0 … Hkv − 1: a kernel that added the KV head
// before checking the stream would find keys there.
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

TEST(DecodeAttentionGpu, MatchesCpuTwin) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  int num_sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  std::mt19937 rng(31);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const Case cases[] = {{1, 128, 8, 4, 16, false, 512}, {3, 64, 2, 8, 3, false, 7},
                        {17, 128, 4, 1, 64, true, 0},   {17, 64, 1, 4, 16, false, 16},
                        {3, 128, 2, 8, 64, false, 512}, {1, 64, 1, 1, 3, true, 0}};
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (const Case& c : cases) {
      const std::vector<gpu_test::SeqSpec> seqs = DecodeSeqs(c.batch);
      gpu_test::SyntheticCache cache({.page_size = c.page_size,
                                      .head_dim = c.head_dim,
                                      .num_kv_heads = c.kv_heads,
                                      .dense = c.dense,
                                      .window = c.window,
                                      .dtype = dtype},
                                     seqs, rng);
      const gpu_test::QueryTokens tokens = gpu_test::MakeQueryTokens(seqs, c.kv_heads);
      const int num_tokens = static_cast<int>(tokens.positions.size());
      const int q_heads = c.kv_heads * c.group;
      std::vector<float> q(static_cast<size_t>(num_tokens) * q_heads * c.head_dim);
      for (float& x : q) x = 2.0f * normal(rng);  // peakier softmax than unit scores
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

      DeviceArray<uint8_t> dq(gpu_test::Encode(q, dtype));
      DeviceArray<int32_t> dstream(tokens.token_stream), dpos(tokens.positions);
      const kernels::DecodeSplitPlan planned =
          kernels::PlanDecodeSplits(cache.MaxVisibleKeys(seqs), num_tokens, c.kv_heads, num_sms);
      // One pass, planned, forced uneven, and balanced (keys_per_split 0: each query cuts its
      // own keys; 64 splits is more than the short sequences' keys, so most are empty).
      const kernels::DecodeSplitPlan plans[] = {{},
                                                planned,
                                                {.num_splits = 5, .keys_per_split = 128},
                                                {.num_splits = 1, .keys_per_split = 0},
                                                {.num_splits = 2, .keys_per_split = 0},
                                                {.num_splits = 7, .keys_per_split = 0},
                                                {.num_splits = 64, .keys_per_split = 0}};
      for (const kernels::DecodeSplitPlan& plan : plans) {
        DeviceArray<uint8_t> dout(Garbage<uint8_t>(q.size() * DeviceDTypeSize(dtype)));
        DeviceArray<float> partial_out(Garbage<float>(static_cast<size_t>(num_tokens) * q_heads *
                                                      plan.num_splits * c.head_dim));
        DeviceArray<float> partial_lse(
            Garbage<float>(static_cast<size_t>(num_tokens) * q_heads * plan.num_splits));
        ASSERT_EQ(kernels::DecodeAttentionCuda({.cache = cache.CudaView(),
                                                .q = dq.get(),
                                                .out = dout.get(),
                                                .token_stream = dstream.get(),
                                                .positions = dpos.get(),
                                                .num_tokens = num_tokens,
                                                .num_q_heads = q_heads,
                                                .num_kv_heads = c.kv_heads,
                                                .scale = scale,
                                                .num_splits = plan.num_splits,
                                                .keys_per_split = plan.keys_per_split,
                                                .partial_out = partial_out.get(),
                                                .partial_lse = partial_lse.get()},
                                               nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what =
            std::string(gpu_test::Name(dtype)) + " batch " + std::to_string(c.batch) + " D " +
            std::to_string(c.head_dim) + " Hkv " + std::to_string(c.kv_heads) + " G " +
            std::to_string(c.group) + " page " + std::to_string(c.page_size) +
            (c.dense ? " dense" : " W " + std::to_string(c.window)) + " splits " +
            std::to_string(plan.num_splits) + " per " + std::to_string(plan.keys_per_split);
        const std::vector<float> got = gpu_test::Decode(dout.ToHost(), dtype);
        EXPECT_TRUE(testing::AllClose(got, expected, gpu_test::ToleranceFor(dtype), what));
        EXPECT_LT(gpu_test::CosineDistance(got, expected), 1e-5) << what;
      }
    }
  }
}

// Padding tokens see no key: their output rows are exactly 0 (their q rows are NaN, which
// must never be read into a result), in one pass and with explicit and balanced splits, and
// the real tokens' rows still match PagedAttentionCpu over the real tokens alone.
TEST(DecodeAttentionGpu, PaddingTokensGiveZeroRows) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(37);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const Case cases[] = {
      {3, 64, 2, 8, 3, false, 7}, {17, 128, 4, 2, 16, false, 16}, {1, 128, 8, 4, 64, true, 0}};
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (const Case& c : cases) {
      const std::vector<gpu_test::SeqSpec> seqs = DecodeSeqs(c.batch);
      gpu_test::SyntheticCache cache({.page_size = c.page_size,
                                      .head_dim = c.head_dim,
                                      .num_kv_heads = c.kv_heads,
                                      .dense = c.dense,
                                      .window = c.window,
                                      .dtype = dtype},
                                     seqs, rng);
      const gpu_test::QueryTokens tokens = gpu_test::MakeQueryTokens(seqs, c.kv_heads);
      const int num_real = static_cast<int>(tokens.positions.size());
      const int q_heads = c.kv_heads * c.group;
      const size_t row = static_cast<size_t>(q_heads) * c.head_dim;
      std::vector<float> q(num_real * row);
      for (float& x : q) x = 2.0f * normal(rng);
      q = gpu_test::Quantize(q, dtype);
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      std::vector<float> expected_real(q.size());
      kernels::PagedAttentionCpu({.cache = cache.CpuView(),
                                  .q = q.data(),
                                  .out = expected_real.data(),
                                  .token_stream = tokens.token_stream.data(),
                                  .positions = tokens.positions.data(),
                                  .num_tokens = num_real,
                                  .num_q_heads = q_heads,
                                  .num_kv_heads = c.kv_heads,
                                  .scale = scale});

      const PaddedTokens padded = Pad(tokens);
      const int num_tokens = static_cast<int>(padded.positions.size());
      std::vector<float> q_padded(num_tokens * row, std::nanf(""));
      std::vector<float> expected(num_tokens * row, 0.0f);
      std::vector<bool> is_padding(num_tokens, true);
      for (int i = 0; i < num_real; ++i) {
        const size_t to = padded.real_row[i] * row;
        std::copy_n(q.begin() + i * row, row, q_padded.begin() + to);
        std::copy_n(expected_real.begin() + i * row, row, expected.begin() + to);
        is_padding[padded.real_row[i]] = false;
      }
      DeviceArray<uint8_t> dq(gpu_test::Encode(q_padded, dtype));
      DeviceArray<int32_t> dstream(padded.token_stream), dpos(padded.positions);
      const kernels::DecodeSplitPlan plans[] = {
          {}, {.num_splits = 3, .keys_per_split = 128}, {.num_splits = 7, .keys_per_split = 0}};
      for (const kernels::DecodeSplitPlan& plan : plans) {
        DeviceArray<uint8_t> dout(Garbage<uint8_t>(q_padded.size() * DeviceDTypeSize(dtype)));
        DeviceArray<float> partial_out(Garbage<float>(q_padded.size() * plan.num_splits));
        DeviceArray<float> partial_lse(
            Garbage<float>(static_cast<size_t>(num_tokens) * q_heads * plan.num_splits));
        ASSERT_EQ(kernels::DecodeAttentionCuda({.cache = cache.CudaView(),
                                                .q = dq.get(),
                                                .out = dout.get(),
                                                .token_stream = dstream.get(),
                                                .positions = dpos.get(),
                                                .num_tokens = num_tokens,
                                                .num_q_heads = q_heads,
                                                .num_kv_heads = c.kv_heads,
                                                .scale = scale,
                                                .num_splits = plan.num_splits,
                                                .keys_per_split = plan.keys_per_split,
                                                .partial_out = partial_out.get(),
                                                .partial_lse = partial_lse.get()},
                                               nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what =
            std::string(gpu_test::Name(dtype)) + " batch " + std::to_string(c.batch) + " D " +
            std::to_string(c.head_dim) + " Hkv " + std::to_string(c.kv_heads) + " splits " +
            std::to_string(plan.num_splits) + " per " + std::to_string(plan.keys_per_split);
        const std::vector<float> got = gpu_test::Decode(dout.ToHost(), dtype);
        for (int t = 0; t < num_tokens; ++t) {
          if (!is_padding[t]) continue;
          for (size_t i = 0; i < row; ++i) {
            ASSERT_EQ(got[t * row + i], 0.0f) << what << " padding token " << t << " value " << i;
          }
        }
        EXPECT_TRUE(testing::AllClose(got, expected, gpu_test::ToleranceFor(dtype), what));
        EXPECT_LT(gpu_test::CosineDistance(got, expected), 1e-5) << what;
      }
    }
  }
}

// A batch gives each sequence bitwise the result it gets alone (blocks never share work
// without splits), in both dtypes.
TEST(DecodeAttentionGpu, BatchEqualsSingleSequence) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(53);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr int kHeadDim = 128, kKvHeads = 2, kGroup = 4, kQHeads = kKvHeads * kGroup;
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    const std::vector<gpu_test::SeqSpec> seqs = DecodeSeqs(17);
    gpu_test::SyntheticCache cache({.page_size = 16,
                                    .head_dim = kHeadDim,
                                    .num_kv_heads = kKvHeads,
                                    .window = 64,
                                    .dtype = dtype},
                                   seqs, rng);
    const gpu_test::QueryTokens tokens = gpu_test::MakeQueryTokens(seqs, kKvHeads);
    const int num_tokens = static_cast<int>(tokens.positions.size());
    std::vector<float> q(static_cast<size_t>(num_tokens) * kQHeads * kHeadDim);
    for (float& x : q) x = normal(rng);
    const int es = DeviceDTypeSize(dtype);
    const size_t row_bytes = static_cast<size_t>(kQHeads) * kHeadDim * es;
    DeviceArray<uint8_t> dq(gpu_test::Encode(q, dtype));
    DeviceArray<uint8_t> batch_out(num_tokens * row_bytes), single_out(num_tokens * row_bytes);
    DeviceArray<int32_t> dstream(tokens.token_stream), dpos(tokens.positions);
    kernels::DecodeAttentionParams p{.cache = cache.CudaView(),
                                     .q = dq.get(),
                                     .out = batch_out.get(),
                                     .token_stream = dstream.get(),
                                     .positions = dpos.get(),
                                     .num_tokens = num_tokens,
                                     .num_q_heads = kQHeads,
                                     .num_kv_heads = kKvHeads,
                                     .scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim))};
    ASSERT_EQ(kernels::DecodeAttentionCuda(p, nullptr), cudaSuccess);
    for (int t = 0; t < num_tokens; ++t) {
      kernels::DecodeAttentionParams one = p;
      one.q = dq.get() + t * row_bytes;
      one.out = single_out.get() + t * row_bytes;
      one.token_stream = dstream.get() + t;
      one.positions = dpos.get() + t;
      one.num_tokens = 1;
      ASSERT_EQ(kernels::DecodeAttentionCuda(one, nullptr), cudaSuccess);
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_TRUE(batch_out.ToHost() == single_out.ToHost()) << gpu_test::Name(dtype);
  }
}

}  // namespace
}  // namespace rami
