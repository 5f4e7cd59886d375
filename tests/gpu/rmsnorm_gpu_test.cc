// RMSNorm: the CUDA kernel against its CPU twin over awkward sizes, with and without the
// fused residual add. Skips without a GPU.
#include <random>
#include <vector>

#include <cuda_runtime_api.h>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/rmsnorm.h"
#include "tests/testing/compare.h"

namespace rami {
namespace {

// Device buffer holding a copy of a host vector; freed on scope exit.
struct DeviceBuffer {
  float* ptr = nullptr;
  size_t count = 0;
  explicit DeviceBuffer(const std::vector<float>& host) : count(host.size()) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&ptr), sizeof(float) * count), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), sizeof(float) * count, cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  std::vector<float> ToHost() const {
    std::vector<float> host(count);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr, sizeof(float) * count, cudaMemcpyDeviceToHost),
              cudaSuccess);
    return host;
  }
  ~DeviceBuffer() { cudaFree(ptr); }
};

TEST(RmsNormGpu, MatchesCpuTwin) {
  if (cuda::DeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int rows : {1, 3, 17}) {
    for (int cols : {1, 3, 17, 129, 4096}) {
      for (bool with_residual : {false, true}) {
        std::vector<float> x(rows * cols), residual(rows * cols), weight(cols);
        for (float& v : x) v = normal(rng);
        for (float& v : residual) v = normal(rng);
        for (float& v : weight) v = 1.0f + 0.1f * normal(rng);
        std::vector<float> out_cpu(x.size()), residual_cpu = residual;
        kernels::RmsNormCpu({.x = x.data(),
                             .residual = with_residual ? residual_cpu.data() : nullptr,
                             .weight = weight.data(),
                             .out = out_cpu.data(),
                             .rows = rows,
                             .cols = cols});
        DeviceBuffer dx(x), dres(residual), dw(weight), dout(std::vector<float>(x.size()));
        ASSERT_EQ(kernels::RmsNormCuda({.x = dx.ptr,
                                        .residual = with_residual ? dres.ptr : nullptr,
                                        .weight = dw.ptr,
                                        .out = dout.ptr,
                                        .rows = rows,
                                        .cols = cols},
                                       nullptr),
                  cudaSuccess);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what = "rows " + std::to_string(rows) + " cols " + std::to_string(cols) +
                                 (with_residual ? " +residual" : "");
        EXPECT_TRUE(testing::AllClose(dout.ToHost(), out_cpu, {.atol = 1e-5, .rtol = 1e-5}, what));
        if (with_residual) {
          EXPECT_TRUE(testing::AllClose(dres.ToHost(), residual_cpu, {.bitwise = true}, what));
        }
      }
    }
  }
}

}  // namespace
}  // namespace rami
