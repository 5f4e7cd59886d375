// CublasLtGemm against the CPU linear twin (kernels/linear.h) over awkward shapes, in bf16
// (inputs rounded to bf16 on the host first, so the only differences are accumulation order and
// the output's rounding: |a−b| ≤ 1e-2 + 2e-2·|b|) and in fp32 (1e-4 + 1e-4·|b|). Checks the
// plan cache is hit on repeated shapes. Strided batched GEMMs (MLA's per-head absorption and
// value up-projection layouts, plain row strides) against LinearCpu per batch on the gathered
// operands. Skips without a device.
#include "kernels/cuda/gemm.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "kernels/linear.h"
#include "tests/gpu/require_device.h"
#include "tests/testing/compare.h"
#include "worker/checkpoint/dtype.h"

namespace rami {

using checkpoint::BF16ToF32;
using checkpoint::F32ToBF16;

namespace {

using kernels::CublasLtGemm;
using kernels::GemmDtype;

struct Shape {
  int m, n, k;
};

// Device copy of a host vector of T; freed at scope exit.
template <typename T>
struct DeviceVector {
  T* ptr = nullptr;
  size_t count = 0;
  explicit DeviceVector(const std::vector<T>& host) : count(host.size()) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&ptr), sizeof(T) * count), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), sizeof(T) * count, cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> ToHost() const {
    std::vector<T> host(count);
    EXPECT_EQ(cudaMemcpy(host.data(), ptr, sizeof(T) * count, cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  ~DeviceVector() { cudaFree(ptr); }
};

// x ~ N(0, 1) and W ~ N(0, 1/k), so every y is O(1) and the tolerances mean the same at any k.
void RandomInputs(const Shape& s, std::mt19937& rng, std::vector<float>& x, std::vector<float>& w) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  x.resize(static_cast<size_t>(s.m) * s.k);
  w.resize(static_cast<size_t>(s.n) * s.k);
  for (float& v : x) v = normal(rng);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.k));
  for (float& v : w) v = normal(rng) * scale;
}

std::vector<float> CpuReference(const Shape& s, const std::vector<float>& x,
                                const std::vector<float>& w) {
  std::vector<float> y(static_cast<size_t>(s.m) * s.n);
  kernels::LinearCpu(
      {.x = x.data(), .w = w.data(), .bias = nullptr, .y = y.data(), .m = s.m, .n = s.n, .k = s.k});
  return y;
}

std::string Name(const Shape& s, const char* dtype) {
  return std::string(dtype) + " m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) +
         " k=" + std::to_string(s.k);
}

// (n, k) pairs: multiples of 16, and odd ones (bf16 rows of 2-byte alignment) that cuBLASLt
// may decline for bf16; m covers a decode token, odd batches and a prefill chunk.
const std::vector<std::pair<int, int>> kNK = {{64, 64},   {1000, 1024}, {16, 4096},
                                              {129, 200}, {17, 33},     {3, 7}};
const int kMs[] = {1, 3, 17, 256};

bool Aligned16(int n, int k, int bytes) { return (n * bytes) % 16 == 0 && (k * bytes) % 16 == 0; }

TEST(GemmGpu, Bf16MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  absl::StatusOr<std::unique_ptr<CublasLtGemm>> gemm = CublasLtGemm::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  std::mt19937 rng(11);
  for (const auto& [n, k] : kNK) {
    for (int m : kMs) {
      const Shape s{m, n, k};
      const std::string what = Name(s, "bf16");
      std::vector<float> x, w;
      RandomInputs(s, rng, x, w);
      // Round the inputs to bf16 once; the reference sees exactly what the GPU sees.
      std::vector<uint16_t> x16(x.size()), w16(w.size());
      for (size_t i = 0; i < x.size(); ++i) x[i] = BF16ToF32(x16[i] = F32ToBF16(x[i]));
      for (size_t i = 0; i < w.size(); ++i) w[i] = BF16ToF32(w16[i] = F32ToBF16(w[i]));
      const std::vector<float> expected = CpuReference(s, x, w);
      DeviceVector<uint16_t> dx(x16), dw(w16), dy(std::vector<uint16_t>(expected.size()));
      const absl::Status status = (*gemm)->Run({.x = dx.ptr,
                                                .w = dw.ptr,
                                                .y = dy.ptr,
                                                .m = m,
                                                .n = n,
                                                .k = k,
                                                .dtype = GemmDtype::kBf16},
                                               nullptr);
      if (status.code() == absl::StatusCode::kUnimplemented && !Aligned16(n, k, 2)) {
        std::printf("note: %s: %s\n", what.c_str(), std::string(status.message()).c_str());
        continue;  // "where cuBLASLt allows": unaligned bf16 rows may have no algorithm
      }
      ASSERT_TRUE(status.ok()) << what << ": " << status;
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      const std::vector<uint16_t> y16 = dy.ToHost();
      std::vector<float> y(y16.size());
      for (size_t i = 0; i < y.size(); ++i) y[i] = BF16ToF32(y16[i]);
      EXPECT_TRUE(testing::AllClose(y, expected, {.atol = 1e-2, .rtol = 2e-2}, what));
    }
  }
}

TEST(GemmGpu, F32MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  absl::StatusOr<std::unique_ptr<CublasLtGemm>> gemm = CublasLtGemm::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  std::mt19937 rng(12);
  for (const auto& [n, k] : kNK) {
    for (int m : kMs) {
      const Shape s{m, n, k};
      const std::string what = Name(s, "f32");
      std::vector<float> x, w;
      RandomInputs(s, rng, x, w);
      const std::vector<float> expected = CpuReference(s, x, w);
      DeviceVector<float> dx(x), dw(w), dy(std::vector<float>(expected.size()));
      const absl::Status status = (*gemm)->Run(
          {.x = dx.ptr, .w = dw.ptr, .y = dy.ptr, .m = m, .n = n, .k = k, .dtype = GemmDtype::kF32},
          nullptr);
      ASSERT_TRUE(status.ok()) << what << ": " << status;  // fp32 has no alignment limits
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      EXPECT_TRUE(testing::AllClose(dy.ToHost(), expected, {.atol = 1e-4, .rtol = 1e-4}, what));
    }
  }
}

TEST(GemmGpu, PlansAreCachedPerShape) {
  RAMI_REQUIRE_CUDA_DEVICE();
  absl::StatusOr<std::unique_ptr<CublasLtGemm>> gemm = CublasLtGemm::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  const Shape s{16, 256, 512};
  std::mt19937 rng(13);
  std::vector<float> x, w;
  RandomInputs(s, rng, x, w);
  const std::vector<float> expected = CpuReference(s, x, w);
  DeviceVector<float> dx(x), dw(w), dy(std::vector<float>(expected.size()));
  const kernels::GemmParams p = {.x = dx.ptr,
                                 .w = dw.ptr,
                                 .y = dy.ptr,
                                 .m = s.m,
                                 .n = s.n,
                                 .k = s.k,
                                 .dtype = GemmDtype::kF32};
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*gemm)->Run(p, nullptr).ok());
  EXPECT_EQ((*gemm)->cached_plans(), 1u);
  kernels::GemmParams other = p;
  other.m = 3;
  ASSERT_TRUE((*gemm)->Run(other, nullptr).ok());
  EXPECT_EQ((*gemm)->cached_plans(), 2u);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  // The m = 3 call rewrote y's first 3 rows from x's first 3 rows.
  const std::vector<float> y = dy.ToHost();
  EXPECT_TRUE(testing::AllClose(absl::MakeConstSpan(y).first(3 * s.n),
                                absl::MakeConstSpan(expected).first(3 * s.n),
                                {.atol = 1e-4, .rtol = 1e-4}));
  // Validation happens before any cuBLASLt call.
  other.k = 0;
  EXPECT_EQ((*gemm)->Run(other, nullptr).code(), absl::StatusCode::kInvalidArgument);
  other = p;
  other.y = nullptr;
  EXPECT_EQ((*gemm)->Run(other, nullptr).code(), absl::StatusCode::kInvalidArgument);
  other.m = 0;
  EXPECT_TRUE((*gemm)->Run(other, nullptr).ok());  // nothing to do
}

// A strided batched GEMM: operand b of x starts at b·stride_x with rows ldx apart, and so on.
struct Strided {
  const char* name;
  int m, n, k, batch;
  int ldx, ldy;
  int64_t stride_x, stride_w, stride_y;
};

// Elements a strided operand spans: the last batch's last row ends there.
size_t Span(int batch, int64_t stride, int rows, int ld, int cols) {
  return static_cast<size_t>((batch - 1) * stride + static_cast<int64_t>(rows - 1) * ld + cols);
}

// MLA's layouts at DeepSeek-like sizes: q_latent[t, h, :lora] = W_uk_t[h] · q[t, h, :nope]
// (x = q [T, H, nope + rope], y = q_latent [T, H, lora + rope]) and
// out[t, h, :v] = W_uv[h] · o_latent[t, h, :lora]; plus plain row strides with one batch.
std::vector<Strided> StridedCases() {
  std::vector<Strided> cases;
  const std::pair<int, int> nope_rope[] = {{16, 8}, {128, 64}};
  for (int t : {1, 3, 17}) {
    for (int h : {2, 16}) {
      for (const auto& [nope, rope] : nope_rope) {
        for (int lora : {32, 512}) {
          const int qk = nope + rope, row = lora + rope;
          cases.push_back({"absorb", t, lora, nope, h, h * qk, h * row, qk,
                           static_cast<int64_t>(lora) * nope, row});
          const int v = nope;
          cases.push_back(
              {"value", t, v, lora, h, h * lora, h * v, lora, static_cast<int64_t>(v) * lora, v});
        }
      }
    }
  }
  // One batch with row strides (a projection reading and writing column slices), and dense
  // batches stacked one after another.
  cases.push_back({"ld only", 17, 64, 96, 1, 128, 80, 0, 0, 0});
  cases.push_back({"stacked", 3, 48, 32, 5, 0, 0, 3 * 32, 48 * 32, 3 * 48});
  return cases;
}

std::string Name(const Strided& c, const char* dtype) {
  return std::string(dtype) + " " + c.name + " m=" + std::to_string(c.m) +
         " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
         " batch=" + std::to_string(c.batch) + " ldx=" + std::to_string(c.ldx) +
         " ldy=" + std::to_string(c.ldy) + " strides " + std::to_string(c.stride_x) + "/" +
         std::to_string(c.stride_w) + "/" + std::to_string(c.stride_y);
}

// Runs every strided case in `dtype` against LinearCpu on each batch's gathered operands. y
// starts as a sentinel, so elements between rows and batches must come back untouched.
void CheckStrided(GemmDtype dtype, uint32_t seed) {
  absl::StatusOr<std::unique_ptr<CublasLtGemm>> gemm = CublasLtGemm::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const bool bf16 = dtype == GemmDtype::kBf16;
  const auto representable = [&](float v) { return bf16 ? BF16ToF32(F32ToBF16(v)) : v; };
  constexpr float kSentinel = 7.0f;
  for (const Strided& c : StridedCases()) {
    const std::string what = Name(c, bf16 ? "bf16" : "f32");
    const int ldx = c.ldx == 0 ? c.k : c.ldx, ldy = c.ldy == 0 ? c.n : c.ldy;
    std::vector<float> x(Span(c.batch, c.stride_x, c.m, ldx, c.k));
    std::vector<float> w(Span(c.batch, c.stride_w, c.n, c.k, c.k));
    std::vector<float> y(Span(c.batch, c.stride_y, c.m, ldy, c.n), kSentinel);
    const float w_scale = 1.0f / std::sqrt(static_cast<float>(c.k));
    for (float& v : x) v = representable(normal(rng));
    for (float& v : w) v = representable(normal(rng) * w_scale);

    std::vector<float> expected = y;
    for (int b = 0; b < c.batch; ++b) {
      std::vector<float> xb(static_cast<size_t>(c.m) * c.k), yb(static_cast<size_t>(c.m) * c.n);
      for (int i = 0; i < c.m; ++i) {
        for (int j = 0; j < c.k; ++j) xb[i * c.k + j] = x[b * c.stride_x + i * ldx + j];
      }
      kernels::LinearCpu({.x = xb.data(),
                          .w = w.data() + b * c.stride_w,
                          .bias = nullptr,
                          .y = yb.data(),
                          .m = c.m,
                          .n = c.n,
                          .k = c.k});
      for (int i = 0; i < c.m; ++i) {
        for (int j = 0; j < c.n; ++j) expected[b * c.stride_y + i * ldy + j] = yb[i * c.n + j];
      }
    }

    kernels::GemmParams p = {.m = c.m,
                             .n = c.n,
                             .k = c.k,
                             .dtype = dtype,
                             .ldx = c.ldx,
                             .ldy = c.ldy,
                             .batch = c.batch,
                             .stride_x = c.stride_x,
                             .stride_w = c.stride_w,
                             .stride_y = c.stride_y};
    std::vector<float> got;
    if (bf16) {
      std::vector<uint16_t> x16(x.size()), w16(w.size()), y16(y.size());
      for (size_t i = 0; i < x.size(); ++i) x16[i] = F32ToBF16(x[i]);
      for (size_t i = 0; i < w.size(); ++i) w16[i] = F32ToBF16(w[i]);
      for (size_t i = 0; i < y.size(); ++i) y16[i] = F32ToBF16(y[i]);
      DeviceVector<uint16_t> dx(x16), dw(w16), dy(y16);
      p.x = dx.ptr;
      p.w = dw.ptr;
      p.y = dy.ptr;
      // Every row and stride here is a multiple of 16 bytes: cuBLASLt must take them all.
      const absl::Status status = (*gemm)->Run(p, nullptr);
      ASSERT_TRUE(status.ok()) << what << ": " << status;
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      for (uint16_t v : dy.ToHost()) got.push_back(BF16ToF32(v));
    } else {
      DeviceVector<float> dx(x), dw(w), dy(y);
      p.x = dx.ptr;
      p.w = dw.ptr;
      p.y = dy.ptr;
      const absl::Status status = (*gemm)->Run(p, nullptr);
      ASSERT_TRUE(status.ok()) << what << ": " << status;
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
      got = dy.ToHost();
    }
    const testing::Tolerance tol = bf16 ? testing::Tolerance{.atol = 1e-2, .rtol = 2e-2}
                                        : testing::Tolerance{.atol = 1e-4, .rtol = 1e-4};
    EXPECT_TRUE(testing::AllClose(got, expected, tol, what));
  }
}

TEST(GemmGpu, StridedBatchedBf16MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  CheckStrided(GemmDtype::kBf16, 21);
}

TEST(GemmGpu, StridedBatchedF32MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  CheckStrided(GemmDtype::kF32, 22);
}

// The plan cache keys on the strides: repeats hit it, equivalent spellings of the dense GEMM
// (ld 0 or k/n, strides with one batch) share its plan, a new stride or batch adds one. Bad
// strides are rejected before any cuBLASLt call.
TEST(GemmGpu, StridedPlansAreCachedAndValidated) {
  RAMI_REQUIRE_CUDA_DEVICE();
  absl::StatusOr<std::unique_ptr<CublasLtGemm>> gemm = CublasLtGemm::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  // The absorb layout with T = 3, H = 4, nope = 32, rope = 16, lora = 64, fp32.
  const int t = 3, h = 4, nope = 32, rope = 16, lora = 64, qk = nope + rope, row = lora + rope;
  DeviceVector<float> dq(std::vector<float>(t * h * qk, 1.0f));
  DeviceVector<float> dw(std::vector<float>(h * lora * nope, 0.5f));
  DeviceVector<float> dy(std::vector<float>(t * h * row, 0.0f));
  const kernels::GemmParams absorb = {.x = dq.ptr,
                                      .w = dw.ptr,
                                      .y = dy.ptr,
                                      .m = t,
                                      .n = lora,
                                      .k = nope,
                                      .dtype = GemmDtype::kF32,
                                      .ldx = h * qk,
                                      .ldy = h * row,
                                      .batch = h,
                                      .stride_x = qk,
                                      .stride_w = lora * nope,
                                      .stride_y = row};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*gemm)->Run(absorb, nullptr).ok());
  EXPECT_EQ((*gemm)->cached_plans(), 1u);
  kernels::GemmParams other = absorb;
  other.batch = h / 2;  // a new batch count: a new plan
  ASSERT_TRUE((*gemm)->Run(other, nullptr).ok());
  EXPECT_EQ((*gemm)->cached_plans(), 2u);

  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  // Every q_latent element is nope · 1 · 0.5; the rope columns stay 0.
  const std::vector<float> y = dy.ToHost();
  for (int i = 0; i < t * h; ++i) {
    for (int j = 0; j < row; ++j) {
      ASSERT_EQ(y[i * row + j], j < lora ? 0.5f * nope : 0.0f) << "row " << i << " col " << j;
    }
  }

  // The dense GEMM, then the same with explicit ld and ignored strides: one plan.
  DeviceVector<float> dense_y(std::vector<float>(2 * 16));
  const kernels::GemmParams dense = {.x = dq.ptr,
                                     .w = dw.ptr,
                                     .y = dense_y.ptr,
                                     .m = 2,
                                     .n = 16,
                                     .k = 8,
                                     .dtype = GemmDtype::kF32};
  ASSERT_TRUE((*gemm)->Run(dense, nullptr).ok());
  EXPECT_EQ((*gemm)->cached_plans(), 3u);
  other = dense;
  other.ldx = 8;
  other.ldy = 16;
  other.stride_x = 123;  // ignored with one batch
  ASSERT_TRUE((*gemm)->Run(other, nullptr).ok());
  EXPECT_EQ((*gemm)->cached_plans(), 3u);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);

  const auto code = [&](const kernels::GemmParams& q) { return (*gemm)->Run(q, nullptr).code(); };
  other = absorb;
  other.ldx = nope - 1;  // below k
  EXPECT_EQ(code(other), absl::StatusCode::kInvalidArgument);
  other = absorb;
  other.ldy = lora - 1;  // below n
  EXPECT_EQ(code(other), absl::StatusCode::kInvalidArgument);
  other = absorb;
  other.batch = 0;
  EXPECT_EQ(code(other), absl::StatusCode::kInvalidArgument);
  other = absorb;
  other.stride_y = lora - 1;  // batches of y would overlap
  EXPECT_EQ(code(other), absl::StatusCode::kInvalidArgument);
  other = absorb;
  other.stride_w = -1;
  EXPECT_EQ(code(other), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*gemm)->cached_plans(), 3u);
}

TEST(GemmGpu, CreateFailsCleanlyWithoutDevice) {
  // Hides the devices; holds when CUDA starts in this test, as under ctest (one test a process).
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  if (cuda::DeviceCount() > 0) {
    GTEST_SKIP() << "CUDA started before this test hid the devices: run it alone";
  }
  EXPECT_EQ(CublasLtGemm::Create().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace rami
