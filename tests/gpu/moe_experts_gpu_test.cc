// GPU MoE experts (RunMoeExpertsCuda: permutation, per-expert cuBLASLt gate_up/down GEMMs,
// SwiGLU, weighted combine) against the CPU worker's math (worker/cpu/moe.cc: LinearCpu, SwigluCpu,
// fp32 accumulation over a token's experts in ascending order), on the goldens' shape (8
// experts, top-2, hidden 64, inter 16) and a wider one (16 experts, top-4, hidden 128, inter
// 48, some experts unrouted), 1/3/17/129 tokens, fp32 and bf16. In bf16 the reference rounds
// where the GPU stores (inputs, gate_up, SwiGLU output, expert output, result), so the
// differences are accumulation order and a last-bit rounding. Skips without a GPU.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/moe_experts.h"
#include "kernels/linear.h"
#include "kernels/swiglu.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;
using kernels::DeviceDType;
using kernels::GemmDtype;

struct ExpertsCase {
  int experts, top_k, hidden, inter;
  int used_experts;  // routing draws from experts [0, used_experts)
};

// out[t] = Σ over t's experts in ascending order of w · down(SwiGLU(gate_up · x[t])).
std::vector<float> Reference(const ExpertsCase& c, int tokens, const std::vector<float>& x,
                             const std::vector<std::vector<float>>& gate_up,
                             const std::vector<std::vector<float>>& down,
                             const std::vector<int32_t>& ids, const std::vector<float>& weights,
                             DeviceDType dtype) {
  std::vector<float> out(static_cast<size_t>(tokens) * c.hidden, 0.0f);
  std::vector<float> gu(2 * c.inter), act(c.inter), y(c.hidden);
  std::vector<int> order(c.top_k);
  for (int t = 0; t < tokens; ++t) {
    const int64_t base = static_cast<int64_t>(t) * c.top_k;
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return ids[base + a] < ids[base + b]; });
    float* o = out.data() + static_cast<size_t>(t) * c.hidden;
    for (int j : order) {
      const int e = ids[base + j];
      kernels::LinearCpu({.x = x.data() + static_cast<size_t>(t) * c.hidden,
                          .w = gate_up[e].data(),
                          .y = gu.data(),
                          .m = 1,
                          .n = 2 * c.inter,
                          .k = c.hidden});
      gu = gpu_test::Quantize(gu, dtype);
      kernels::SwigluCpu({.gate_up = gu.data(), .out = act.data(), .rows = 1, .cols = c.inter});
      act = gpu_test::Quantize(act, dtype);
      kernels::LinearCpu({.x = act.data(),
                          .w = down[e].data(),
                          .y = y.data(),
                          .m = 1,
                          .n = c.hidden,
                          .k = c.inter});
      y = gpu_test::Quantize(y, dtype);
      for (int i = 0; i < c.hidden; ++i) o[i] += weights[base + j] * y[i];
    }
  }
  return gpu_test::Quantize(out, dtype);
}

TEST(MoeExpertsGpu, MatchesCpuMath) {
  RAMI_REQUIRE_CUDA_DEVICE();
  absl::StatusOr<std::unique_ptr<kernels::CublasLtGemm>> gemm = kernels::CublasLtGemm::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  std::mt19937 rng(83);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.05f, 1.0f);
  const ExpertsCase cases[] = {{8, 2, 64, 16, 8}, {16, 4, 128, 48, 11}};
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    const GemmDtype gemm_dtype = dtype == DeviceDType::kF32 ? GemmDtype::kF32 : GemmDtype::kBf16;
    for (const ExpertsCase& c : cases) {
      // W ~ N(0, 1/k): every intermediate is O(1), so the tolerances mean the same per shape.
      auto random = [&](size_t n, float scale) {
        std::vector<float> v(n);
        for (float& x : v) x = normal(rng) * scale;
        return gpu_test::Quantize(v, dtype);
      };
      std::vector<std::vector<float>> gate_up, down;
      std::vector<std::unique_ptr<DeviceArray<uint8_t>>> d_weights;
      std::vector<const void*> gate_up_ptrs, down_ptrs;
      for (int e = 0; e < c.experts; ++e) {
        gate_up.push_back(random(static_cast<size_t>(2) * c.inter * c.hidden,
                                 1.0f / std::sqrt(static_cast<float>(c.hidden))));
        down.push_back(random(static_cast<size_t>(c.hidden) * c.inter,
                              1.0f / std::sqrt(static_cast<float>(c.inter))));
        d_weights.push_back(
            std::make_unique<DeviceArray<uint8_t>>(gpu_test::Encode(gate_up.back(), dtype)));
        gate_up_ptrs.push_back(d_weights.back()->get());
        d_weights.push_back(
            std::make_unique<DeviceArray<uint8_t>>(gpu_test::Encode(down.back(), dtype)));
        down_ptrs.push_back(d_weights.back()->get());
      }
      for (int tokens : {1, 3, 17, 129}) {
        const std::vector<float> x = random(static_cast<size_t>(tokens) * c.hidden, 1.0f);
        // Distinct experts per token, in a random (not sorted) order, random weights.
        std::vector<int32_t> ids(static_cast<size_t>(tokens) * c.top_k);
        std::vector<float> weights(ids.size());
        std::vector<int32_t> pool(c.used_experts);
        for (int t = 0; t < tokens; ++t) {
          std::iota(pool.begin(), pool.end(), 0);
          std::shuffle(pool.begin(), pool.end(), rng);
          for (int j = 0; j < c.top_k; ++j) {
            ids[static_cast<size_t>(t) * c.top_k + j] = pool[j];
            weights[static_cast<size_t>(t) * c.top_k + j] = unit(rng);
          }
        }
        const std::vector<float> expected =
            Reference(c, tokens, x, gate_up, down, ids, weights, dtype);

        DeviceArray<uint8_t> dx(gpu_test::Encode(x, dtype));
        DeviceArray<uint8_t> dout(expected.size() * DeviceDTypeSize(dtype));
        const size_t ws_bytes =
            kernels::MoeExpertsWorkspaceBytes(tokens, c.top_k, c.hidden, c.inter, gemm_dtype);
        DeviceArray<uint8_t> workspace(ws_bytes);
        const absl::Status status = kernels::RunMoeExpertsCuda({.x = dx.get(),
                                                                .out = dout.get(),
                                                                .expert_ids = ids.data(),
                                                                .weights = weights.data(),
                                                                .gate_up = gate_up_ptrs.data(),
                                                                .down = down_ptrs.data(),
                                                                .num_tokens = tokens,
                                                                .top_k = c.top_k,
                                                                .num_experts = c.experts,
                                                                .hidden = c.hidden,
                                                                .inter = c.inter,
                                                                .dtype = gemm_dtype,
                                                                .workspace = workspace.get(),
                                                                .workspace_bytes = ws_bytes},
                                                               **gemm, nullptr);
        ASSERT_TRUE(status.ok()) << status;
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::string what = std::string(gpu_test::Name(dtype)) + " experts " +
                                 std::to_string(c.experts) + " top " + std::to_string(c.top_k) +
                                 " tokens " + std::to_string(tokens);
        const std::vector<float> got = gpu_test::Decode(dout.ToHost(), dtype);
        EXPECT_TRUE(testing::AllClose(got, expected, gpu_test::ToleranceFor(dtype), what));
        EXPECT_LT(gpu_test::CosineDistance(got, expected), 1e-5) << what;
      }
    }
  }
}

TEST(MoeExpertsGpu, RefusesBadRouting) {
  RAMI_REQUIRE_CUDA_DEVICE();
  absl::StatusOr<std::unique_ptr<kernels::CublasLtGemm>> gemm = kernels::CublasLtGemm::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  const std::vector<int32_t> ids = {0, 5};  // 5 ≥ 4 experts
  const std::vector<float> weights = {0.5f, 0.5f};
  const std::vector<const void*> none(4, nullptr);
  DeviceArray<uint8_t> buffer(1 << 16);
  kernels::MoeExpertsCudaParams p{.x = buffer.get(),
                                  .out = buffer.get(),
                                  .expert_ids = ids.data(),
                                  .weights = weights.data(),
                                  .gate_up = none.data(),
                                  .down = none.data(),
                                  .num_tokens = 1,
                                  .top_k = 2,
                                  .num_experts = 4,
                                  .hidden = 64,
                                  .inter = 16,
                                  .dtype = GemmDtype::kBf16,
                                  .workspace = buffer.get(),
                                  .workspace_bytes = 1 << 16};
  EXPECT_EQ(kernels::RunMoeExpertsCuda(p, **gemm, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> routed = {0, 1};  // in range, but expert 0 has no weights
  p.expert_ids = routed.data();
  EXPECT_EQ(kernels::RunMoeExpertsCuda(p, **gemm, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  p.workspace_bytes = 16;
  EXPECT_EQ(kernels::RunMoeExpertsCuda(p, **gemm, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

}  // namespace
}  // namespace rami
