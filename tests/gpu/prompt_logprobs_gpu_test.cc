// Prompt log-probs on the CUDA backend (cuda_model_score.cc: scored rows through the LM head in
// slices, log-softmax + top-n on the device) against the CPU backend, both under an Engine, on
// transformers goldens with the CUDA kernels' head sizes: one dense, one DMS (its default policy).
// A 150-token prompt (three device slices when it comes at once) in chunks of 1, 7 and all at
// once, fp32 (the exactness mode): every position scored, the same token, log-probs within
// 2e-4 of the CPU's (this kernel ladder's fp32 tolerance), top-n ids equal where the CPU's
// neighbours are more than 1e-3 apart. Skips without a GPU.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "tests/gpu/cuda_model_testing.h"
#include "tests/gpu/require_device.h"
#include "tests/testing/prompt_scoring.h"
#include "worker/engine/engine.h"
#include "worker/engine/token_scores.h"

namespace rami {
namespace {

using collectives::SingleRankCollectives;
using engine::Engine;
using engine::PlanPrefill;
using engine::PromptTokenLogprob;
using engine::StepOutcome;
using engine::StepPlan;
using gpu_test::CudaModelAndCache;
using gpu_test::MakeCudaModel;

constexpr int kTopN = 5;

std::unique_ptr<Engine> CpuEngine(const std::string& name) {
  absl::StatusOr<std::unique_ptr<cpu::Model>> model =
      cpu::Model::Load(testing::GoldenModelDir(name), {});
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<kv::KvCache>> cache = (*model)->shape().MakeCache(
      {.page_size = 16, .num_pages = 4096}, (*model)->shape().DefaultCachePolicy());
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return nullptr;
  return std::make_unique<Engine>(std::move(*model), std::move(*cache),
                                  std::make_unique<SingleRankCollectives>());
}

std::unique_ptr<Engine> CudaEngine(const std::string& name) {
  CudaModelAndCache device = MakeCudaModel(name, {.dtype = kernels::DeviceDType::kF32});
  if (device.model == nullptr) return nullptr;
  return std::make_unique<Engine>(std::move(device.model), std::move(device.cache),
                                  std::make_unique<SingleRankCollectives>(),
                                  gpu_test::kTestCache.limits);
}

// The prompt's scores, `chunk` tokens a step; an unscored sequence prefills alongside.
std::vector<PromptTokenLogprob> Scores(Engine& engine, const std::vector<int32_t>& prompt,
                                       size_t chunk) {
  return testing::ScorePromptInChunks(engine, prompt, chunk, kTopN, /*scored_first=*/true);
}

class PromptLogprobsGpuTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PromptLogprobsGpuTest, EqualTheCpuBackend) {
  RAMI_REQUIRE_CUDA_DEVICE();
  const std::string name = GetParam();
  absl::StatusOr<std::vector<testing::GoldenCase>> cases = testing::LoadGoldenCases(name);
  ASSERT_TRUE(cases.ok()) << cases.status();
  std::vector<int32_t> prompt = cases->back().prompt;
  std::mt19937 rng(5);
  while (prompt.size() < 150) prompt.push_back(static_cast<int32_t>(rng() % 256));
  for (size_t chunk : {size_t{1}, size_t{7}, prompt.size()}) {
    std::unique_ptr<Engine> cpu = CpuEngine(name);
    std::unique_ptr<Engine> gpu = CudaEngine(name);
    ASSERT_TRUE(cpu != nullptr && gpu != nullptr);
    const std::vector<PromptTokenLogprob> want = Scores(*cpu, prompt, chunk);
    const std::vector<PromptTokenLogprob> got = Scores(*gpu, prompt, chunk);
    ASSERT_EQ(want.size(), prompt.size() - 1) << "chunk " << chunk;
    ASSERT_EQ(got.size(), want.size()) << "chunk " << chunk;
    for (size_t i = 0; i < want.size(); ++i) {
      const std::string where = name + " chunk " + std::to_string(chunk) + " position " +
                                std::to_string(want[i].position);
      EXPECT_EQ(got[i].position, want[i].position) << where;
      EXPECT_EQ(got[i].score.token_id, want[i].score.token_id) << where;
      EXPECT_NEAR(got[i].score.logprob, want[i].score.logprob, 2e-4) << where;
      ASSERT_EQ(got[i].score.top.size(), want[i].score.top.size()) << where;
      for (size_t j = 0; j < want[i].score.top.size(); ++j) {
        EXPECT_NEAR(got[i].score.top[j].logprob, want[i].score.top[j].logprob, 2e-4) << where;
        const float before = j > 0 ? want[i].score.top[j - 1].logprob : INFINITY;
        const float after =
            j + 1 < want[i].score.top.size() ? want[i].score.top[j + 1].logprob : -INFINITY;
        const float here = want[i].score.top[j].logprob;
        if (before - here > 1e-3f && here - after > 1e-3f) {
          EXPECT_EQ(got[i].score.top[j].token_id, want[i].score.top[j].token_id) << where;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, PromptLogprobsGpuTest,
                         ::testing::Values("qwen2_hd64", "qwen3_dms_hd64"));

}  // namespace
}  // namespace rami
