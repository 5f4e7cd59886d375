// DeviceWeights (worker/cuda/device_weights.h): a small synthetic shard uploaded in fp32 comes
// back bit for bit, in bf16 as the host's round-to-nearest-even of every value; absent tensors
// are null, a tied LM head is the embedding, DeepSeek is refused; the pool sizing answers a
// positive page count for a sane fraction.
#include "worker/cuda/device_weights.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {

using checkpoint::LayerWeights;
using checkpoint::ModelConfig;
using checkpoint::ModelWeights;

namespace {

std::vector<float> Random(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

std::vector<float> Download(const void* ptr, size_t n, kernels::DeviceDType dtype) {
  std::vector<uint8_t> raw(n * kernels::DeviceDTypeSize(dtype));
  EXPECT_EQ(cudaMemcpy(raw.data(), ptr, raw.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  return gpu_test::Decode(raw, dtype);
}

TEST(DeviceWeightsGpuTest, UploadsEveryTensorInTheComputeDtype) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(1);
  ModelWeights w;
  w.embed = Random(50 * 16, rng);
  w.final_norm = Random(16, rng);
  for (int i = 0; i < 2; ++i) {
    LayerWeights l;
    l.input_norm = Random(16, rng);
    l.qkv = Random(24 * 16, rng);
    l.q_norm = Random(4, rng);
    l.k_norm = Random(4, rng);
    l.o_proj = Random(16 * 8, rng);
    l.post_norm = Random(16, rng);
    l.gate_up = Random(2 * 20 * 16, rng);
    l.down = Random(16 * 20, rng);
    w.layers.push_back(l);
  }
  ModelConfig config;
  for (kernels::DeviceDType dtype : {kernels::DeviceDType::kF32, kernels::DeviceDType::kBF16}) {
    absl::StatusOr<std::unique_ptr<cuda::DeviceWeights>> d =
        cuda::DeviceWeights::Upload(config, w, dtype);
    ASSERT_TRUE(d.ok()) << d.status();
    auto expect = [&](const void* ptr, const std::vector<float>& host) {
      ASSERT_NE(ptr, nullptr);
      const std::vector<float> got = Download(ptr, host.size(), dtype);
      const std::vector<float> want = gpu_test::Decode(gpu_test::Encode(host, dtype), dtype);
      ASSERT_EQ(got, want);
    };
    expect((*d)->embed(), w.embed);
    EXPECT_EQ((*d)->lm_head(), (*d)->embed()) << "tied LM head";
    expect((*d)->final_norm(), w.final_norm);
    ASSERT_EQ((*d)->num_layers(), 2);
    for (int i = 0; i < 2; ++i) {
      const cuda::DeviceLayerWeights& l = (*d)->layer(i);
      expect(l.input_norm, w.layers[i].input_norm);
      expect(l.qkv, w.layers[i].qkv);
      expect(l.q_norm, w.layers[i].q_norm);
      expect(l.k_norm, w.layers[i].k_norm);
      expect(l.o_proj, w.layers[i].o_proj);
      expect(l.post_norm, w.layers[i].post_norm);
      expect(l.gate_up, w.layers[i].gate_up);
      expect(l.down, w.layers[i].down);
      EXPECT_EQ(l.qkv_bias, nullptr);
      EXPECT_EQ(l.o_bias, nullptr);
      EXPECT_EQ(l.dms_alpha, nullptr);
    }
  }
  config.mla.enabled = true;
  EXPECT_FALSE(cuda::DeviceWeights::Upload(config, w, kernels::DeviceDType::kBF16).ok());
  absl::StatusOr<int64_t> pages = cuda::DevicePoolPages(0.5, 1 << 20);
  ASSERT_TRUE(pages.ok()) << pages.status();
  EXPECT_GT(*pages, 0);
}

}  // namespace
}  // namespace rami
