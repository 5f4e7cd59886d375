// Prefix-cache snapshots on the CUDA backend: the scenario of tests/testing/snapshot_scenario.h
// (a warm run copied from a snapshot against the cold run, the snapshot copied twice and freed
// while its copy decodes, every page returned) on the device. What it checks of the backend: a
// copy made before the step's reservation reaches the device page tables in the same step
// (Engine → CacheChanged before Reserve → Sync), its tail pages are copied on the device before
// its chunk writes after them, and a DMS copy's first chunk decides the snapshot's pending flag
// in the copy's own flags. Dense, window and DMS (borrowed and adapter) checkpoints with the
// CUDA kernels' head size, fp32 (the exactness mode), pages of 16 tokens: P inside a page, P ≤ W,
// P at a page-aligned chunk boundary, P = L. Tokens and live counts exactly as cold, log-probs
// within 1e-5. Skips without a GPU.
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/gpu/cuda_model_testing.h"
#include "tests/gpu/require_device.h"
#include "tests/testing/snapshot_scenario.h"
#include "worker/engine/engine.h"

namespace rami {
namespace {

using engine::Engine;
using kv::CachePolicy;
using testing::SnapshotCut;

constexpr int kLength = 40;

struct Case {
  std::string name;
  std::string model;
  std::optional<CachePolicy> policy;  // unset: the checkpoint's
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name << " " << c.model; }

class SnapshotGpuTest : public ::testing::TestWithParam<Case> {};

TEST_P(SnapshotGpuTest, WarmRunEqualsColdRun) {
  RAMI_REQUIRE_CUDA_DEVICE();
  const Case& c = GetParam();
  std::mt19937 rng(23);
  std::vector<int32_t> prompt;
  for (int i = 0; i < kLength; ++i) prompt.push_back(static_cast<int32_t>(rng() % 128));
  const SnapshotCut cuts[] = {{"MidPage", {0, 21, kLength}, 21},
                              {"WithinWindow", {0, 5, kLength}, 5},
                              {"ChunkBoundary", {0, 8, 16, 29, kLength}, 16},
                              {"FullHit", {0, 7, kLength}, kLength}};
  for (const SnapshotCut& cut : cuts) {
    gpu_test::CudaModelAndCache device =
        gpu_test::MakeCudaModel(c.model, {.dtype = kernels::DeviceDType::kF32}, c.policy);
    ASSERT_NE(device.model, nullptr);
    Engine engine(std::move(device.model), std::move(device.cache),
                  std::make_unique<collectives::SingleRankCollectives>(),
                  gpu_test::kTestCache.limits);
    const testing::SnapshotTrace trace = testing::RunSnapshotScenario(engine, cut, prompt);
    testing::ExpectWarmEqualsCold(trace, cut, {.logprob = 1e-5}, c.name + " " + cut.name);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Policies, SnapshotGpuTest,
    ::testing::Values(Case{"dense", "qwen2_hd64", CachePolicy::Dense()},
                      Case{"window", "qwen2_hd64", CachePolicy::Window(4, 12)},
                      Case{"dms", "qwen3_dms_hd64", std::nullopt},
                      Case{"dms_adapter", "qwen3_dms_adapter_hd64", std::nullopt}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace rami
