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
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DecodeSeqs;
using gpu_test::DeviceArray;
using kernels::DeviceDType;

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

// One case's decode step (gpu_test::DecodeStep): KV heads of head_dim values, G query heads
// per KV head; PagedAttentionCpu's output, and DecodeAttentionCuda under test.
struct Step : gpu_test::DecodeStep {
  Step(const Case& spec, DeviceDType dtype, std::mt19937& rng,
       std::normal_distribution<float>& normal)
      : DecodeStep(spec, dtype,
                   {.head_dim = spec.head_dim,
                    .num_kv_heads = spec.kv_heads,
                    .num_heads = spec.kv_heads * spec.group,
                    .q_dim = spec.head_dim,
                    .out_dim = spec.head_dim},
                   " D " + std::to_string(spec.head_dim) + " Hkv " + std::to_string(spec.kv_heads) +
                       " G " + std::to_string(spec.group),
                   rng, normal),
        c(spec),
        scale(1.0f / std::sqrt(static_cast<float>(c.head_dim))) {
    kernels::PagedAttentionCpu({.cache = cache.CpuView(),
                                .q = q.data(),
                                .out = expected.data(),
                                .token_stream = tokens.token_stream.data(),
                                .positions = tokens.positions.data(),
                                .num_tokens = num_tokens,
                                .num_q_heads = heads.num_heads,
                                .num_kv_heads = c.kv_heads,
                                .scale = scale});
  }

  cudaError_t Launch(const Buffers& b) override {
    auto p = SharedParams<kernels::DecodeAttentionParams>(b);
    p.num_q_heads = heads.num_heads;
    p.num_kv_heads = c.kv_heads;
    p.scale = scale;
    return kernels::DecodeAttentionCuda(p, nullptr);
  }

  const Case c;
  const float scale;
};

TEST(DecodeAttentionGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  int num_sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  const Case cases[] = {{1, 128, 8, 4, 16, false, 512}, {3, 64, 2, 8, 3, false, 7},
                        {17, 128, 4, 1, 64, true, 0},   {17, 64, 1, 4, 16, false, 16},
                        {3, 128, 2, 8, 64, false, 512}, {1, 64, 1, 1, 3, true, 0}};
  gpu_test::ForEachStep<Step>(31, cases, [&](Step& step) {
    const kernels::DecodeSplitPlan planned = kernels::PlanDecodeSplits(
        step.cache.MaxVisibleKeys(step.seqs), step.num_tokens, step.c.kv_heads, num_sms);
    gpu_test::ExpectEverySplitMatches(step, planned, 128);
  });
}

// Every query-per-KV-head group the kernel takes (1 … kAttentionMaxGroup: Qwen2.5-1.5B has 6,
// Qwen3-14B 5, Qwen2-7B 7) at both head sizes, against the twin.
TEST(DecodeAttentionGpu, EveryGroupAndHeadDimMatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  int num_sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  static_assert(kernels::kAttentionMaxGroup == 8, "extend the cases below");
  const Case cases[] = {
      {3, 64, 2, 1, 16, false, 16},  {3, 64, 2, 2, 16, false, 16},  {3, 64, 2, 3, 16, false, 16},
      {3, 64, 2, 4, 16, false, 16},  {3, 64, 2, 5, 16, false, 16},  {3, 64, 2, 6, 16, false, 16},
      {3, 64, 2, 7, 16, false, 16},  {3, 64, 2, 8, 16, false, 16},  {3, 128, 2, 1, 16, false, 16},
      {3, 128, 2, 2, 16, false, 16}, {3, 128, 2, 3, 16, false, 16}, {3, 128, 2, 4, 16, false, 16},
      {3, 128, 2, 5, 16, false, 16}, {3, 128, 2, 6, 16, false, 16}, {3, 128, 2, 7, 16, false, 16},
      {3, 128, 2, 8, 16, false, 16},
  };
  gpu_test::ForEachStep<Step>(67, cases, [&](Step& step) {
    const kernels::DecodeSplitPlan planned = kernels::PlanDecodeSplits(
        step.cache.MaxVisibleKeys(step.seqs), step.num_tokens, step.c.kv_heads, num_sms);
    gpu_test::ExpectEverySplitMatches(step, planned, 128);
  });
}

// Padding tokens see no key: their output rows are exactly 0 (their q rows are NaN, which
// must never be read into a result), in one pass and with explicit and balanced splits, and
// the real tokens' rows still match PagedAttentionCpu over the real tokens alone.
TEST(DecodeAttentionGpu, PaddingTokensGiveZeroRows) {
  RAMI_REQUIRE_CUDA_DEVICE();
  const Case cases[] = {
      {3, 64, 2, 8, 3, false, 7}, {17, 128, 4, 2, 16, false, 16}, {1, 128, 8, 4, 64, true, 0}};
  gpu_test::ForEachStep<Step>(37, cases,
                              [](Step& step) { gpu_test::ExpectPaddingRowsZero(step, 128); });
}

// A batch gives each sequence bitwise the result it gets alone (blocks never share work
// without splits), in both dtypes.
TEST(DecodeAttentionGpu, BatchEqualsSingleSequence) {
  RAMI_REQUIRE_CUDA_DEVICE();
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
