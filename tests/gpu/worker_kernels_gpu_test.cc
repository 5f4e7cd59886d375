// The CUDA kernels of the forward pass that have no transformer-op name of their own — the
// logits gather, the DMS adapter and per-layer decision share, the page-table scatter —
// against their CPU twins (kernels/logits_gather.h, kernels/dms_decision.h,
// kernels/table_scatter.h) over awkward sizes. Skips without a GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/dms_decision.h"
#include "kernels/logits_gather.h"
#include "kernels/table_scatter.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;
using kernels::DeviceDType;

// A layout of `world` ranks' padded shards, rows taken in a scrambled order (with repeats), the
// padding columns dropped: the fp32 output equals the twin's bitwise (bf16 inputs widen exactly).
TEST(LogitsGatherGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int world : {1, 2, 3}) {
      for (int vocab : {1, 97, 1031}) {
        const int vocab_local = (vocab + world - 1) / world;  // the padded shard
        const int rows_per_rank = 5;
        std::vector<float> in(static_cast<size_t>(world) * rows_per_rank * vocab_local);
        for (float& v : in) v = normal(rng);
        in = gpu_test::Quantize(in, dtype);
        const std::vector<int32_t> rows = {4, 0, 2, 2};
        std::vector<float> expected(rows.size() * vocab);
        kernels::LogitsGatherCpu({.in = in.data(),
                                  .rows = rows.data(),
                                  .out = expected.data(),
                                  .num_rows = static_cast<int>(rows.size()),
                                  .rows_per_rank = rows_per_rank,
                                  .vocab_local = vocab_local,
                                  .world = world,
                                  .vocab = vocab});
        DeviceArray<uint8_t> din(gpu_test::Encode(in, dtype));
        DeviceArray<int32_t> drows(rows);
        DeviceArray<float> dout(gpu_test::Garbage<float>(expected.size()));
        ASSERT_EQ(kernels::LogitsGatherCuda({.in = din.get(),
                                             .rows = drows.get(),
                                             .out = dout.get(),
                                             .num_rows = static_cast<int>(rows.size()),
                                             .rows_per_rank = rows_per_rank,
                                             .vocab_local = vocab_local,
                                             .world = world,
                                             .vocab = vocab,
                                             .dtype = dtype},
                                            nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what = std::string(gpu_test::Name(dtype)) + " world " +
                                 std::to_string(world) + " vocab " + std::to_string(vocab);
        EXPECT_TRUE(testing::AllClose(dout.ToHost(), expected, {.bitwise = true}, what));
      }
    }
  }
  // A vocabulary wider than the shards is refused.
  EXPECT_EQ(kernels::LogitsGatherCuda({.in = nullptr,
                                       .rows = nullptr,
                                       .out = nullptr,
                                       .num_rows = 1,
                                       .rows_per_rank = 1,
                                       .vocab_local = 4,
                                       .world = 2,
                                       .vocab = 9},
                                      nullptr),
            cudaErrorInvalidValue);
}

// The adapter's decisions equal the twin's wherever the logit is not within the summation-order
// noise of the threshold (inputs are redrawn until every decision has a margin), in fp32 and on
// bf16-rounded inputs; with and without a bias.
TEST(DmsAdapterGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float scale = 100.0f, offset = 5.0f;
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (const auto& [tokens, heads, hidden] :
         std::vector<std::tuple<int, int, int>>{{1, 1, 16}, {3, 2, 129}, {17, 8, 1024}}) {
      for (bool with_bias : {false, true}) {
        std::vector<float> x, w, bias, logits(static_cast<size_t>(tokens) * heads);
        std::vector<uint8_t> expected(logits.size());
        for (int attempt = 0;; ++attempt) {
          ASSERT_LT(attempt, 100) << "no draw with margins";
          x.assign(static_cast<size_t>(tokens) * hidden, 0.0f);
          w.assign(static_cast<size_t>(heads) * hidden, 0.0f);
          bias.assign(with_bias ? heads : 0, 0.0f);
          // Scaled so that logits spread around the threshold 0.05: both decisions occur.
          for (float& v : x) v = normal(rng);
          for (float& v : w) v = 0.1f * normal(rng) / std::sqrt(static_cast<float>(hidden));
          for (float& v : bias) v = 0.05f + 0.02f * normal(rng);
          x = gpu_test::Quantize(x, dtype);
          w = gpu_test::Quantize(w, dtype);
          bias = gpu_test::Quantize(bias, dtype);
          kernels::DmsAdapterDecisionCpu({.x = x.data(),
                                          .w = w.data(),
                                          .bias = with_bias ? bias.data() : nullptr,
                                          .logits = logits.data(),
                                          .alpha = expected.data(),
                                          .num_tokens = tokens,
                                          .num_kv_heads = heads,
                                          .hidden = hidden,
                                          .alpha_scale = scale,
                                          .alpha_offset = offset});
          if (std::all_of(logits.begin(), logits.end(),
                          [&](float l) { return std::fabs(l * scale - offset) > 1e-3f; })) {
            break;
          }
        }
        DeviceArray<uint8_t> dx(gpu_test::Encode(x, dtype));
        DeviceArray<uint8_t> dw(gpu_test::Encode(w, dtype));
        DeviceArray<uint8_t> dbias(
            gpu_test::Encode(with_bias ? bias : std::vector<float>{0.0f}, dtype));
        DeviceArray<uint8_t> dalpha(std::vector<uint8_t>(expected.size(), 7));
        ASSERT_EQ(kernels::DmsAdapterDecisionCuda({.x = dx.get(),
                                                   .w = dw.get(),
                                                   .bias = with_bias ? dbias.get() : nullptr,
                                                   .alpha = dalpha.get(),
                                                   .num_tokens = tokens,
                                                   .num_kv_heads = heads,
                                                   .hidden = hidden,
                                                   .alpha_scale = scale,
                                                   .alpha_offset = offset,
                                                   .dtype = dtype},
                                                  nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        EXPECT_EQ(dalpha.ToHost(), expected)
            << gpu_test::Name(dtype) << " " << tokens << "x" << heads << "x" << hidden
            << (with_bias ? " bias" : "");
      }
    }
  }
}

// The per-layer share: head 0's decision as a float (or 0 on a rank that does not hold it),
// then spread over every head — bitwise the twins' results.
TEST(DmsHeadZeroGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(29);
  for (int tokens : {1, 3, 129}) {
    for (int heads : {1, 4}) {
      for (bool contribute : {true, false}) {
        std::vector<uint8_t> alpha(static_cast<size_t>(tokens) * heads);
        for (uint8_t& a : alpha) a = rng() % 2;
        std::vector<uint8_t> want = alpha;
        std::vector<float> shared(tokens, -1.0f);
        const kernels::DmsHeadZeroParams cpu{.alpha = want.data(),
                                             .shared = shared.data(),
                                             .num_tokens = tokens,
                                             .num_kv_heads = heads,
                                             .contribute = contribute};
        kernels::DmsHeadZeroToFloatCpu(cpu);
        const std::vector<float> shared_cpu = shared;
        kernels::DmsSpreadHeadZeroCpu(cpu);
        DeviceArray<uint8_t> dalpha(alpha);
        DeviceArray<float> dshared(gpu_test::Garbage<float>(tokens));
        const kernels::DmsHeadZeroParams gpu{.alpha = dalpha.get(),
                                             .shared = dshared.get(),
                                             .num_tokens = tokens,
                                             .num_kv_heads = heads,
                                             .contribute = contribute};
        ASSERT_EQ(kernels::DmsHeadZeroToFloatCuda(gpu, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        EXPECT_EQ(dshared.ToHost(), shared_cpu);
        ASSERT_EQ(kernels::DmsSpreadHeadZeroCuda(gpu, nullptr), cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        EXPECT_EQ(dalpha.ToHost(), want) << tokens << "x" << heads << " " << contribute;
      }
    }
  }
}

// Random segments of distinct indices into seven int32 tables and the flag bytes (some empty;
// two with runs of several entries, as window_base and window_start are written per sequence):
// the device tables equal the twin's, untouched entries included.
TEST(TableScatterGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(31);
  constexpr int kEntries = 3000;
  for (int trial = 0; trial < 4; ++trial) {
    std::vector<std::vector<int32_t>> tables(kernels::kScatterSegments - 1,
                                             std::vector<int32_t>(kEntries));
    std::vector<uint8_t> flags(kEntries);
    for (auto& t : tables) std::iota(t.begin(), t.end(), 100 * trial);
    for (uint8_t& f : flags) f = rng() % 2;
    std::vector<std::vector<int32_t>> index(kernels::kScatterSegments);
    std::vector<int32_t> run(kernels::kScatterSegments, 1);
    run[4] = run[5] = 3 + 2 * trial;
    std::vector<std::vector<int32_t>> ints(kernels::kScatterSegments - 1);
    std::vector<uint8_t> bytes;
    for (int s = 0; s < kernels::kScatterSegments; ++s) {
      std::vector<int32_t> all(kEntries / run[s]);
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      const int count = (s == 2 || trial == 3) ? 0 : static_cast<int>(rng() % (700 / run[s]));
      index[s].assign(all.begin(), all.begin() + count);
      for (int i = 0; i < count; ++i) {
        if (s < kernels::kScatterSegments - 1) {
          ints[s].push_back(static_cast<int32_t>(rng()));
        } else {
          bytes.push_back(static_cast<uint8_t>(rng() % 2));
        }
      }
    }
    // The twin on host copies.
    std::vector<std::vector<int32_t>> want_tables = tables;
    std::vector<uint8_t> want_flags = flags;
    kernels::TableScatterParams cpu;
    for (int s = 0; s < kernels::kScatterSegments; ++s) {
      const bool last = s == kernels::kScatterSegments - 1;
      cpu.segments[s] = {.table = last ? static_cast<void*>(want_flags.data())
                                       : static_cast<void*>(want_tables[s].data()),
                         .index = index[s].data(),
                         .value = last ? static_cast<const void*>(bytes.data())
                                       : static_cast<const void*>(ints[s].data()),
                         .count = static_cast<int32_t>(index[s].size()),
                         .run = run[s]};
      cpu.total += static_cast<int64_t>(index[s].size()) * run[s];
    }
    kernels::TableScatterCpu(cpu);
    // The same writes on the device.
    std::vector<std::unique_ptr<DeviceArray<int32_t>>> dtables, dints, dindex;
    for (int s = 0; s < kernels::kScatterSegments - 1; ++s) {
      dtables.push_back(std::make_unique<DeviceArray<int32_t>>(tables[s]));
      dints.push_back(std::make_unique<DeviceArray<int32_t>>(ints[s]));
    }
    for (int s = 0; s < kernels::kScatterSegments; ++s) {
      dindex.push_back(std::make_unique<DeviceArray<int32_t>>(index[s]));
    }
    DeviceArray<uint8_t> dflags(flags), dbytes(bytes);
    kernels::TableScatterParams gpu;
    for (int s = 0; s < kernels::kScatterSegments; ++s) {
      const bool last = s == kernels::kScatterSegments - 1;
      gpu.segments[s] = {
          .table = last ? static_cast<void*>(dflags.get()) : static_cast<void*>(dtables[s]->get()),
          .index = dindex[s]->get(),
          .value = last ? static_cast<const void*>(dbytes.get())
                        : static_cast<const void*>(dints[s]->get()),
          .count = static_cast<int32_t>(index[s].size()),
          .run = run[s]};
    }
    gpu.total = cpu.total;
    ASSERT_EQ(kernels::TableScatterCuda(gpu, nullptr), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    for (int s = 0; s < kernels::kScatterSegments - 1; ++s) {
      EXPECT_EQ(dtables[s]->ToHost(), want_tables[s]) << "trial " << trial << " table " << s;
    }
    EXPECT_EQ(dflags.ToHost(), want_flags) << "trial " << trial;
  }
}

}  // namespace
}  // namespace rami
