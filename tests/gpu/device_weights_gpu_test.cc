// DeviceWeights (worker/cuda/device_weights.h): a small synthetic shard uploaded in fp32 comes
// back bit for bit, in bf16 as the host's round-to-nearest-even of every value; absent tensors
// are null, a tied LM head is the embedding, DeepSeek is refused; the pool sizing answers a
// positive page count for a sane fraction. Load (read and upload one layer at a time) puts the
// same bytes on the device as Upload of the whole-model load, for a golden model and a TP shard.
#include "worker/cuda/device_weights.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"
#include "worker/checkpoint/config_parser.h"

namespace rami {

using checkpoint::Checkpoint;
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

std::vector<uint8_t> Bytes(const void* ptr, size_t n, kernels::DeviceDType dtype) {
  std::vector<uint8_t> raw(n * kernels::DeviceDTypeSize(dtype));
  if (ptr != nullptr) {
    EXPECT_EQ(cudaMemcpy(raw.data(), ptr, raw.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  }
  return raw;
}

TEST(DeviceWeightsGpuTest, LoadByLayerEqualsUploadOfTheWholeModel) {
  RAMI_REQUIRE_CUDA_DEVICE();
  const std::string dir = std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/qwen3_dms_adapter";
  absl::StatusOr<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  absl::StatusOr<ModelConfig> config =
      checkpoint::ParseModelConfig((*ckpt)->config(), dir + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  const kernels::DeviceDType dtype = kernels::DeviceDType::kBF16;
  for (const checkpoint::ShardSpec shard :
       {checkpoint::ShardSpec{}, checkpoint::ShardSpec{.rank = 1, .world_size = 2}}) {
    absl::StatusOr<ModelWeights> host = checkpoint::LoadWeights(**ckpt, *config, shard);
    ASSERT_TRUE(host.ok()) << host.status();
    absl::StatusOr<std::unique_ptr<cuda::DeviceWeights>> want =
        cuda::DeviceWeights::Upload(*config, *host, dtype);
    ASSERT_TRUE(want.ok()) << want.status();
    absl::StatusOr<std::unique_ptr<cuda::DeviceWeights>> got =
        cuda::DeviceWeights::Load(**ckpt, *config, shard, dtype);
    ASSERT_TRUE(got.ok()) << got.status();
    auto same = [&](const void* a, const void* b, const std::vector<float>& h, const char* what) {
      EXPECT_EQ(a == nullptr, b == nullptr) << what;
      EXPECT_EQ(Bytes(a, h.size(), dtype), Bytes(b, h.size(), dtype)) << what;
    };
    same((*got)->embed(), (*want)->embed(), host->embed, "embed");
    same((*got)->lm_head(), (*want)->lm_head(), host->lm_head.empty() ? host->embed : host->lm_head,
         "lm_head");
    same((*got)->final_norm(), (*want)->final_norm(), host->final_norm, "final_norm");
    ASSERT_EQ((*got)->num_layers(), config->num_layers);
    for (int i = 0; i < config->num_layers; ++i) {
      const cuda::DeviceLayerWeights& a = (*got)->layer(i);
      const cuda::DeviceLayerWeights& b = (*want)->layer(i);
      const LayerWeights& h = host->layers[i];
      same(a.input_norm, b.input_norm, h.input_norm, "input_norm");
      same(a.qkv, b.qkv, h.qkv, "qkv");
      same(a.q_norm, b.q_norm, h.q_norm, "q_norm");
      same(a.k_norm, b.k_norm, h.k_norm, "k_norm");
      same(a.o_proj, b.o_proj, h.o_proj, "o_proj");
      same(a.post_norm, b.post_norm, h.post_norm, "post_norm");
      same(a.gate_up, b.gate_up, h.gate_up, "gate_up");
      same(a.down, b.down, h.down, "down");
      same(a.dms_alpha, b.dms_alpha, h.dms_alpha, "dms_alpha");
      same(a.dms_alpha_bias, b.dms_alpha_bias, h.dms_alpha_bias, "dms_alpha_bias");
      same(a.dms_alpha_norm, b.dms_alpha_norm, h.dms_alpha_norm, "dms_alpha_norm");
    }
  }
}

}  // namespace
}  // namespace rami
