// Decode attention over the DMS cache: the CUDA kernel (one pass, planned split-KV and forced
// uneven splits) against PagedAttentionCpu, in fp32 and bf16, over batches 1/3/17, head_dim
// 64/128, GQA 1/4/8, lengths 1/7/513/4099, page sizes 3/16/64, dms and dense. Every element
// within tolerance and the cosine distance < 1e-5. Skips without a GPU.
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

struct Case {
  int batch, head_dim, kv_heads, group, page_size;
  bool dense;
  int32_t window;
};

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
      const kernels::DecodeSplitPlan plans[] = {
          {}, planned, {.num_splits = 5, .keys_per_split = 128}};
      for (const kernels::DecodeSplitPlan& plan : plans) {
        DeviceArray<uint8_t> dout(q.size() * DeviceDTypeSize(dtype));
        DeviceArray<float> partial_out(static_cast<size_t>(num_tokens) * q_heads * plan.num_splits *
                                       c.head_dim);
        DeviceArray<float> partial_lse(static_cast<size_t>(num_tokens) * q_heads * plan.num_splits);
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
        const std::string what = std::string(gpu_test::Name(dtype)) + " batch " +
                                 std::to_string(c.batch) + " D " + std::to_string(c.head_dim) +
                                 " Hkv " + std::to_string(c.kv_heads) + " G " +
                                 std::to_string(c.group) + " page " + std::to_string(c.page_size) +
                                 (c.dense ? " dense" : " W " + std::to_string(c.window)) +
                                 " splits " + std::to_string(plan.num_splits);
        const std::vector<float> got = gpu_test::Decode(dout.ToHost(), dtype);
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
