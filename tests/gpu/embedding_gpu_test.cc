// Embedding (vocab-parallel): the CUDA kernel against its CPU twin, bitwise (a lookup is a
// copy), for ids inside and outside this rank's slice, rows that do and do not allow 16-byte
// vectors. Skips without a GPU.
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/embedding.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;
using kernels::DeviceDType;

TEST(EmbeddingGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  constexpr int kVocabStart = 100, kVocabLocal = 50;
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int num_tokens : {1, 3, 17}) {
      for (int hidden : {64, 129, 4096}) {
        std::vector<float> table(kVocabLocal * hidden);
        for (float& v : table) v = normal(rng);
        table = gpu_test::Quantize(table, dtype);
        std::vector<int32_t> tokens(num_tokens);
        std::uniform_int_distribution<int32_t> id(kVocabStart - 20, kVocabStart + kVocabLocal + 20);
        for (int32_t& t : tokens) t = id(rng);
        std::vector<float> expected(num_tokens * hidden);
        kernels::EmbeddingCpu({.tokens = tokens.data(),
                               .table = table.data(),
                               .out = expected.data(),
                               .num_tokens = num_tokens,
                               .hidden = hidden,
                               .vocab_start = kVocabStart,
                               .vocab_local = kVocabLocal});
        DeviceArray<int32_t> d_tokens(tokens);
        DeviceArray<uint8_t> d_table(gpu_test::Encode(table, dtype));
        DeviceArray<uint8_t> d_out(
            std::vector<uint8_t>(expected.size() * DeviceDTypeSize(dtype), 0xff));
        ASSERT_EQ(kernels::EmbeddingCuda({.tokens = d_tokens.get(),
                                          .table = d_table.get(),
                                          .out = d_out.get(),
                                          .num_tokens = num_tokens,
                                          .hidden = hidden,
                                          .vocab_start = kVocabStart,
                                          .vocab_local = kVocabLocal,
                                          .dtype = dtype},
                                         nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what = std::string(gpu_test::Name(dtype)) + " tokens " +
                                 std::to_string(num_tokens) + " hidden " + std::to_string(hidden);
        EXPECT_TRUE(testing::AllClose(gpu_test::Decode(d_out.ToHost(), dtype), expected,
                                      {.bitwise = true}, what));
      }
    }
  }
}

}  // namespace
}  // namespace rami
