// Typed RMSNorm (+ residual), SwiGLU and the bias add: the CUDA kernels against their CPU twins in
// fp32 and bf16 over awkward sizes. In bf16 the CPU twin runs on the bf16-rounded inputs; the
// residual sum is stored in bf16 on the device (as transformers keeps it), so it is compared within
// one bf16 rounding. Skips without a GPU.
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/bias_add.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/rmsnorm.h"
#include "kernels/swiglu.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;
using kernels::DeviceDType;

TEST(RmsNormTypedGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int rows : {1, 3, 17}) {
      for (int cols : {64, 129, 4096}) {
        for (bool with_residual : {false, true}) {
          const size_t n = static_cast<size_t>(rows) * cols;
          std::vector<float> x(n), residual(n), weight(cols);
          for (float& v : x) v = normal(rng);
          for (float& v : residual) v = normal(rng);
          for (float& v : weight) v = 1.0f + 0.1f * normal(rng);
          x = gpu_test::Quantize(x, dtype);
          residual = gpu_test::Quantize(residual, dtype);
          weight = gpu_test::Quantize(weight, dtype);
          std::vector<float> expected(n), residual_cpu = residual;
          kernels::RmsNormCpu({.x = x.data(),
                               .residual = with_residual ? residual_cpu.data() : nullptr,
                               .weight = weight.data(),
                               .out = expected.data(),
                               .rows = rows,
                               .cols = cols});
          DeviceArray<uint8_t> dx(gpu_test::Encode(x, dtype));
          DeviceArray<uint8_t> dres(gpu_test::Encode(residual, dtype));
          DeviceArray<uint8_t> dw(gpu_test::Encode(weight, dtype));
          DeviceArray<uint8_t> dout(n * DeviceDTypeSize(dtype));
          ASSERT_EQ(kernels::RmsNormTypedCuda({.x = dx.get(),
                                               .residual = with_residual ? dres.get() : nullptr,
                                               .weight = dw.get(),
                                               .out = dout.get(),
                                               .rows = rows,
                                               .cols = cols,
                                               .dtype = dtype},
                                              nullptr),
                    cudaSuccess);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const std::string what = std::string(gpu_test::Name(dtype)) + " rows " +
                                   std::to_string(rows) + " cols " + std::to_string(cols) +
                                   (with_residual ? " +residual" : "");
          EXPECT_TRUE(testing::AllClose(gpu_test::Decode(dout.ToHost(), dtype), expected,
                                        gpu_test::ToleranceFor(dtype), what));
          if (with_residual) {
            // fp32: the same single addition, bitwise; bf16: the sum rounded once.
            EXPECT_TRUE(testing::AllClose(gpu_test::Decode(dres.ToHost(), dtype),
                                          gpu_test::Quantize(residual_cpu, dtype),
                                          {.bitwise = true}, what + " residual"));
          }
        }
      }
    }
  }
}

TEST(SwigluGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int rows : {1, 3, 17}) {
      for (int cols : {1, 129, 3072}) {
        std::vector<float> gate_up(static_cast<size_t>(rows) * 2 * cols);
        for (float& v : gate_up) v = normal(rng);
        gate_up = gpu_test::Quantize(gate_up, dtype);
        std::vector<float> expected(static_cast<size_t>(rows) * cols);
        kernels::SwigluCpu(
            {.gate_up = gate_up.data(), .out = expected.data(), .rows = rows, .cols = cols});
        DeviceArray<uint8_t> din(gpu_test::Encode(gate_up, dtype));
        DeviceArray<uint8_t> dout(expected.size() * DeviceDTypeSize(dtype));
        ASSERT_EQ(kernels::SwigluCuda({.gate_up = din.get(),
                                       .out = dout.get(),
                                       .rows = rows,
                                       .cols = cols,
                                       .dtype = dtype},
                                      nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what = std::string(gpu_test::Name(dtype)) + " rows " +
                                 std::to_string(rows) + " cols " + std::to_string(cols);
        EXPECT_TRUE(testing::AllClose(gpu_test::Decode(dout.ToHost(), dtype), expected,
                                      gpu_test::ToleranceFor(dtype), what));
      }
    }
  }
}

// y + bias in fp32, rounded once to the dtype: bf16 bitwise equal to the CPU twin's sum rounded
// (one addition of two bf16 values in fp32 is exact before the store's rounding).
TEST(BiasAddGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int rows : {1, 3, 17, 129}) {
      for (int cols : {1, 7, 129, 4096}) {
        std::vector<float> y(static_cast<size_t>(rows) * cols), bias(cols);
        for (float& v : y) v = normal(rng);
        for (float& v : bias) v = normal(rng);
        y = gpu_test::Quantize(y, dtype);
        bias = gpu_test::Quantize(bias, dtype);
        std::vector<float> expected = y;
        kernels::BiasAddCpu(
            {.y = expected.data(), .bias = bias.data(), .rows = rows, .cols = cols});
        DeviceArray<uint8_t> dy(gpu_test::Encode(y, dtype));
        DeviceArray<uint8_t> dbias(gpu_test::Encode(bias, dtype));
        ASSERT_EQ(
            kernels::BiasAddCuda(
                {.y = dy.get(), .bias = dbias.get(), .rows = rows, .cols = cols, .dtype = dtype},
                nullptr),
            cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what = std::string(gpu_test::Name(dtype)) + " rows " +
                                 std::to_string(rows) + " cols " + std::to_string(cols);
        EXPECT_TRUE(testing::AllClose(gpu_test::Decode(dy.ToHost(), dtype),
                                      gpu_test::Quantize(expected, dtype), {.bitwise = true},
                                      what));
      }
    }
  }
}

}  // namespace
}  // namespace rami
