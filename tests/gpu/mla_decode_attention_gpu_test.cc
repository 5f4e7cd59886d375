// Absorbed MLA decode attention over the DMS cache: MlaDecodeAttentionCuda (one pass, planned
// split-KV, forced uneven splits and balanced splits 1/2/7/64) against MlaAttentionCpu, in fp32
// and bf16, over batches 1/3/17, heads 1/3/16/128 (several head blocks, a partial one), rows
// 512 + 64 (DeepSeek-V3) and 32 + 8 (the goldens), lengths 1/7/513/4099, page sizes 3/16/64,
// dms and dense. Every element within tolerance and the cosine distance < 1e-5. Padding tokens
// (stream −1) give rows of exact zeros. Skips without a GPU.
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
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DecodeSeqs;
using gpu_test::DeviceArray;
using kernels::DeviceDType;

struct Case {
  int batch, heads, latent, rope, page_size;
  bool dense;
  int32_t window;
  std::vector<gpu_test::SeqSpec> seqs = {};  // empty: DecodeSeqs(batch)
};

// One case's decode step (gpu_test::DecodeStep): one KV head of latent + rope values, `heads`
// query heads; MlaAttentionCpu's output, and MlaDecodeAttentionCuda under test. 1/sqrt(row)
// keeps the scores' spread (~2) as peaky as the GQA test's.
struct Step : gpu_test::DecodeStep {
  Step(const Case& spec, DeviceDType dtype, std::mt19937& rng,
       std::normal_distribution<float>& normal)
      : DecodeStep(spec, dtype,
                   {.head_dim = spec.latent + spec.rope,
                    .num_kv_heads = 1,
                    .num_heads = spec.heads,
                    .q_dim = spec.latent + spec.rope,
                    .out_dim = spec.latent},
                   " heads " + std::to_string(spec.heads) + " row " + std::to_string(spec.latent) +
                       "+" + std::to_string(spec.rope),
                   rng, normal),
        c(spec),
        scale(1.0f / std::sqrt(static_cast<float>(c.latent + c.rope))) {
    kernels::MlaAttentionCpu({.cache = cache.CpuView(),
                              .q = q.data(),
                              .out = expected.data(),
                              .token_stream = tokens.token_stream.data(),
                              .positions = tokens.positions.data(),
                              .num_tokens = num_tokens,
                              .num_heads = c.heads,
                              .latent_dim = c.latent,
                              .scale = scale});
  }

  cudaError_t Launch(const Buffers& b) override {
    auto p = SharedParams<kernels::MlaDecodeAttentionParams>(b);
    p.num_heads = c.heads;
    p.latent_dim = c.latent;
    p.scale = scale;
    return kernels::MlaDecodeAttentionCuda(p, nullptr);
  }

  const Case c;
  const float scale;
};

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
  RAMI_REQUIRE_CUDA_DEVICE();
  int num_sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  const Case cases[] = {
      {1, 16, 512, 64, 16, false, 512}, {3, 128, 512, 64, 64, false, 64},
      {17, 16, 512, 64, 3, true, 0},    {1, 128, 512, 64, 64, true, 0},
      {17, 1, 32, 8, 16, false, 16},    {3, 3, 32, 8, 3, true, 0},
      {17, 20, 32, 8, 64, false, 7},
  };
  gpu_test::ForEachStep<Step>(47, cases, [&](Step& step) {
    const kernels::DecodeSplitPlan planned = kernels::PlanMlaDecodeSplits(
        step.cache.MaxVisibleKeys(step.seqs), step.num_tokens, step.c.heads, num_sms);
    gpu_test::ExpectEverySplitMatches(step, planned, 96);
  });
}

// Mixed steps — prefill chunks next to decode tokens, as the CUDA engine runs every MLA token
// through this kernel — at every latent-row size the engine meets: DeepSeek-V3/V2 (512 + 64),
// the goldens (32 + 8), the wide test model (128 + 32) and a 256 + 32 in between; a prefill
// token sees its chunk's earlier rows by position.
TEST(MlaDecodeAttentionGpu, MixedPrefillAndDecodeStepsMatchCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  int num_sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  const std::vector<gpu_test::SeqSpec> mixed = {{4099, 1}, {130, 67}, {7, 7}, {513, 1}};
  const std::vector<gpu_test::SeqSpec> long_chunk = {{600, 600}, {3, 1}};
  const Case cases[] = {
      {0, 16, 512, 64, 16, false, 64, mixed},        {0, 4, 32, 8, 3, false, 8, mixed},
      {0, 20, 128, 32, 64, true, 0, mixed},          {0, 16, 256, 32, 16, false, 7, long_chunk},
      {0, 128, 512, 64, 64, false, 512, long_chunk},
  };
  gpu_test::ForEachStep<Step>(61, cases, [&](Step& step) {
    const kernels::DecodeSplitPlan planned = kernels::PlanMlaDecodeSplits(
        step.cache.MaxVisibleKeys(step.seqs), step.num_tokens, step.c.heads, num_sms);
    gpu_test::ExpectEverySplitMatches(step, planned, 96);
  });
}

// Padding tokens see no key: their output rows are exactly 0 (their q rows are NaN, which
// must never be read into a result), in one pass and with explicit and balanced splits, and
// the real tokens' rows still match MlaAttentionCpu over the real tokens alone.
TEST(MlaDecodeAttentionGpu, PaddingTokensGiveZeroRows) {
  RAMI_REQUIRE_CUDA_DEVICE();
  const Case cases[] = {
      {3, 16, 512, 64, 16, false, 512}, {17, 20, 32, 8, 64, false, 7}, {1, 3, 32, 8, 3, true, 0}};
  gpu_test::ForEachStep<Step>(43, cases,
                              [](Step& step) { gpu_test::ExpectPaddingRowsZero(step, 96); });
}

// A batch gives each token bitwise the result it gets alone, and bad shapes are refused
// before any launch.
TEST(MlaDecodeAttentionGpu, BatchEqualsSingleTokenAndRejectsBadShapes) {
  RAMI_REQUIRE_CUDA_DEVICE();
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
