// Fused QKV preparation (split, Qwen3 q/k norm, DMS decision + channel zeroing, RoPE incl.
// scaled inverse frequencies): the CUDA kernel against its CPU twin, in fp32 and bf16, with and
// without the q/k norm and the borrowed neuron, at long positions. Decisions must agree
// exactly in fp32 and on ≥ 99 % of (token, head) pairs in bf16 (the device rounds the normed
// q to bf16 before reading it, as the bf16 model does). Skips without a GPU.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/dms_decision.h"
#include "kernels/qkv_prep.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;
using kernels::DeviceDType;

// Default RoPE frequencies with llama3-style scaling of the low ones (enough to exercise any
// table: the kernel reads inv_freq as given).
std::vector<float> InvFreq(int head_dim) {
  std::vector<float> inv_freq(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) {
    const double f = 1.0 / std::pow(1e6, 2.0 * i / head_dim);
    inv_freq[i] = static_cast<float>(2 * M_PI / f > 8192 ? f / 8 : f);
  }
  return inv_freq;
}

struct Case {
  int tokens, q_heads, kv_heads, head_dim;
  bool norm, dms;
};

TEST(QkvPrepGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const Case cases[] = {{1, 4, 4, 64, true, true},     {3, 32, 8, 128, true, true},
                        {17, 16, 2, 128, true, false}, {17, 8, 1, 64, false, true},
                        {7, 8, 8, 128, false, false},  {129, 32, 4, 128, true, true}};
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (const Case& c : cases) {
      const int heads = c.q_heads + 2 * c.kv_heads, d = c.head_dim;
      std::vector<float> qkv(static_cast<size_t>(c.tokens) * heads * d), q_norm(d), k_norm(d);
      for (float& v : qkv) v = normal(rng);
      for (float& v : q_norm) v = 1.0f + 0.2f * normal(rng);
      for (float& v : k_norm) v = 1.0f + 0.2f * normal(rng);
      qkv = gpu_test::Quantize(qkv, dtype);
      q_norm = gpu_test::Quantize(q_norm, dtype);
      k_norm = gpu_test::Quantize(k_norm, dtype);
      std::vector<int32_t> positions(c.tokens);
      std::uniform_int_distribution<int32_t> pos(0, 40000);
      for (int32_t& p : positions) p = pos(rng);
      const std::vector<float> inv_freq = InvFreq(d);
      const float attention_scale = c.dms ? 1.0f : 1.1f;

      std::vector<float> q(static_cast<size_t>(c.tokens) * c.q_heads * d);
      std::vector<float> k(static_cast<size_t>(c.tokens) * c.kv_heads * d), v(k.size());
      std::vector<uint8_t> alpha(static_cast<size_t>(c.tokens) * c.kv_heads, 7);
      kernels::QkvPrepCpu({.qkv = qkv.data(),
                           .q = q.data(),
                           .k = k.data(),
                           .v = v.data(),
                           .q_norm = c.norm ? q_norm.data() : nullptr,
                           .k_norm = c.norm ? k_norm.data() : nullptr,
                           .positions = positions.data(),
                           .inv_freq = inv_freq.data(),
                           .alpha = c.dms ? alpha.data() : nullptr,
                           .num_tokens = c.tokens,
                           .num_q_heads = c.q_heads,
                           .num_kv_heads = c.kv_heads,
                           .head_dim = d,
                           .attention_scale = attention_scale});

      const int es = DeviceDTypeSize(dtype);
      DeviceArray<uint8_t> dqkv(gpu_test::Encode(qkv, dtype));
      DeviceArray<uint8_t> dqn(gpu_test::Encode(q_norm, dtype)),
          dkn(gpu_test::Encode(k_norm, dtype));
      DeviceArray<uint8_t> dq(q.size() * es), dk(k.size() * es), dv(v.size() * es);
      DeviceArray<int32_t> dpos(positions);
      DeviceArray<float> dfreq(inv_freq);
      DeviceArray<uint8_t> dalpha(std::vector<uint8_t>(alpha.size(), 7));
      ASSERT_EQ(kernels::QkvPrepCuda({.qkv = dqkv.get(),
                                      .q = dq.get(),
                                      .k = dk.get(),
                                      .v = dv.get(),
                                      .q_norm = c.norm ? dqn.get() : nullptr,
                                      .k_norm = c.norm ? dkn.get() : nullptr,
                                      .positions = dpos.get(),
                                      .inv_freq = dfreq.get(),
                                      .alpha = c.dms ? dalpha.get() : nullptr,
                                      .num_tokens = c.tokens,
                                      .num_q_heads = c.q_heads,
                                      .num_kv_heads = c.kv_heads,
                                      .head_dim = d,
                                      .attention_scale = attention_scale,
                                      .dtype = dtype},
                                     nullptr),
                cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::string what = std::string(gpu_test::Name(dtype)) + " T " +
                               std::to_string(c.tokens) + " Hq " + std::to_string(c.q_heads) +
                               " Hkv " + std::to_string(c.kv_heads) + " D " + std::to_string(d) +
                               (c.norm ? " norm" : "") + (c.dms ? " dms" : "");
      const testing::Tolerance tol = gpu_test::ToleranceFor(dtype);
      EXPECT_TRUE(testing::AllClose(gpu_test::Decode(dq.ToHost(), dtype), q, tol, what + " q"));
      EXPECT_TRUE(testing::AllClose(gpu_test::Decode(dk.ToHost(), dtype), k, tol, what + " k"));
      EXPECT_TRUE(testing::AllClose(gpu_test::Decode(dv.ToHost(), dtype), v, {.bitwise = true},
                                    what + " v"));
      const std::vector<uint8_t> got = dalpha.ToHost();
      int agree = 0;
      for (size_t i = 0; i < alpha.size(); ++i) agree += got[i] == alpha[i];
      const double rate = static_cast<double>(agree) / alpha.size();
      if (dtype == DeviceDType::kF32) {
        EXPECT_EQ(agree, static_cast<int>(alpha.size())) << what;
      } else {
        EXPECT_GE(rate, c.tokens * c.kv_heads >= 100 ? 0.99 : 0.9) << what;
      }
    }
  }
}

// Adapter decisions (dms_separate_alpha): the threshold of the projection's fp32 logits,
// bitwise equal to the CPU twin, including logits right at the threshold.
TEST(DmsLogitDecisionGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(47);
  std::normal_distribution<float> normal(0.05f, 0.01f);
  for (int count : {1, 7, 513, 4099 * 8}) {
    std::vector<float> logits(count);
    for (float& v : logits) v = normal(rng);
    logits[0] = 0.05f;  // 0.05f · 100 − 5 rounds to a tiny value: same sign on both sides
    std::vector<uint8_t> alpha(count, 7);
    kernels::DmsLogitDecisionCpu({.logits = logits.data(), .alpha = alpha.data(), .count = count});
    DeviceArray<float> dlogits(logits);
    DeviceArray<uint8_t> dalpha(std::vector<uint8_t>(count, 7));
    ASSERT_EQ(kernels::DmsLogitDecisionCuda(
                  {.logits = dlogits.get(), .alpha = dalpha.get(), .count = count}, nullptr),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_EQ(dalpha.ToHost(), alpha) << "count " << count;
  }
}

}  // namespace
}  // namespace rami
