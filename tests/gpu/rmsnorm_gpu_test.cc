// RMSNorm: the CUDA kernel against its CPU twin over awkward sizes, with and without the
// fused residual add, and with row strides (MLA's latent normed in place ahead of its rope
// part). Skips without a GPU, except the parameter checks.
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime_api.h>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/rmsnorm.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"
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
  RAMI_REQUIRE_CUDA_DEVICE();
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

// Rows of lora + rope elements, the first lora normed: in place (x = out, the engine's MLA
// latent) and from the strided rows into a dense out. Elements past `cols` stay bitwise as
// they were; the normed ones match RmsNormCpu on the gathered rows.
TEST(RmsNormGpu, StridedRowsMatchCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  using kernels::DeviceDType;
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::pair<int, int> lora_rope[] = {{512, 64}, {129, 3}, {1, 8}};
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int rows : {1, 3, 17}) {
      for (const auto& [cols, rope] : lora_rope) {
        for (bool in_place : {true, false}) {
          const int stride = cols + rope;
          std::vector<float> x(static_cast<size_t>(rows) * stride), weight(cols);
          for (float& v : x) v = normal(rng);
          for (float& v : weight) v = 1.0f + 0.1f * normal(rng);
          x = gpu_test::Quantize(x, dtype);
          weight = gpu_test::Quantize(weight, dtype);

          std::vector<float> dense(static_cast<size_t>(rows) * cols), normed(dense.size());
          for (int r = 0; r < rows; ++r) {
            for (int c = 0; c < cols; ++c) dense[r * cols + c] = x[r * stride + c];
          }
          kernels::RmsNormCpu({.x = dense.data(),
                               .residual = nullptr,
                               .weight = weight.data(),
                               .out = normed.data(),
                               .rows = rows,
                               .cols = cols});

          gpu_test::DeviceArray<uint8_t> dx(gpu_test::Encode(x, dtype));
          gpu_test::DeviceArray<uint8_t> dw(gpu_test::Encode(weight, dtype));
          gpu_test::DeviceArray<uint8_t> dout(dense.size() * kernels::DeviceDTypeSize(dtype));
          ASSERT_EQ(kernels::RmsNormTypedCuda({.x = dx.get(),
                                               .weight = dw.get(),
                                               .out = in_place ? dx.get() : dout.get(),
                                               .rows = rows,
                                               .cols = cols,
                                               .dtype = dtype,
                                               .x_stride = stride,
                                               .out_stride = in_place ? stride : 0},
                                              nullptr),
                    cudaSuccess);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const std::string what = std::string(gpu_test::Name(dtype)) + " rows " +
                                   std::to_string(rows) + " cols " + std::to_string(cols) +
                                   " stride " + std::to_string(stride) +
                                   (in_place ? " in place" : " to dense");
          const std::vector<float> got_x = gpu_test::Decode(dx.ToHost(), dtype);
          std::vector<float> got(dense.size()), got_tail, want_tail;
          for (int r = 0; r < rows; ++r) {
            for (int c = 0; c < stride; ++c) {
              if (c >= cols) {
                got_tail.push_back(got_x[r * stride + c]);
                want_tail.push_back(x[r * stride + c]);
              } else if (in_place) {
                got[r * cols + c] = got_x[r * stride + c];
              }
            }
          }
          if (!in_place) {
            got = gpu_test::Decode(dout.ToHost(), dtype);
            // The input is read only.
            EXPECT_TRUE(testing::AllClose(got_x, x, {.bitwise = true}, what + " x"));
          }
          EXPECT_TRUE(testing::AllClose(got, normed, gpu_test::ToleranceFor(dtype), what));
          EXPECT_TRUE(testing::AllClose(got_tail, want_tail, {.bitwise = true}, what + " tail"));
        }
      }
    }
  }
}

// Strides below cols, or with the residual (which stays dense), are refused before any
// launch, so this runs without a device too.
TEST(RmsNormGpu, RejectsBadStrides) {
  float x = 0.0f, residual = 0.0f, weight = 1.0f;
  const kernels::RmsNormCudaParams good = {.x = &x,
                                           .weight = &weight,
                                           .out = &x,
                                           .rows = 1,
                                           .cols = 4,
                                           .dtype = kernels::DeviceDType::kF32,
                                           .x_stride = 8,
                                           .out_stride = 8};
  kernels::RmsNormCudaParams p = good;
  p.x_stride = 3;
  EXPECT_EQ(kernels::RmsNormTypedCuda(p, nullptr), cudaErrorInvalidValue);
  p = good;
  p.out_stride = -1;
  EXPECT_EQ(kernels::RmsNormTypedCuda(p, nullptr), cudaErrorInvalidValue);
  p = good;
  p.residual = &residual;
  EXPECT_EQ(kernels::RmsNormTypedCuda(p, nullptr), cudaErrorInvalidValue);
  p.x_stride = 4;  // dense x, strided out: still refused with a residual
  EXPECT_EQ(kernels::RmsNormTypedCuda(p, nullptr), cudaErrorInvalidValue);
  p = good;
  p.rows = 0;  // nothing to do
  EXPECT_EQ(kernels::RmsNormTypedCuda(p, nullptr), cudaSuccess);
}

}  // namespace
}  // namespace rami
