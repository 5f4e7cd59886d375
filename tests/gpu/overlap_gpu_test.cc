// Overlapped decode steps on the GPU (CudaModel::RunDecodeSteps → engine::CudaStepHost with
// overlap): step N + 1 reserved, synced and packed before step N's results are taken, N committed
// before its decisions arrive, N's samples written into N + 1's packed plan at its launch.
// Against the same steps one after the other on a fresh model and cache: every step's tokens
// equal, and the caches equal at the end (per sequence: length, live tokens, decisions,
// evictions, page references), on a DMS golden (W = 8, so tokens leave the windows and pages
// are promoted, dropped and released during the run), fp32 and bf16, CUDA graphs on. The CPU
// twin of this test, with a device timeline that checks the ordering, is
// tests/unit/cuda_step_host_test.cc. Skips without a GPU.
#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/gpu/cuda_model_testing.h"
#include "tests/gpu/require_device.h"
#include "tests/testing/sequence_stats.h"
#include "worker/cuda/cuda_model.h"

namespace rami {

using collectives::SingleRankCollectives;
using engine::ForwardResult;
using engine::SequenceChunk;
using kv::SeqId;
using kv::SequenceStats;

namespace {

using gpu_test::CudaModelAndCache;
using gpu_test::MakeCudaModel;

constexpr int kSequences = 5;
constexpr int kSteps = 40;

struct Outcome {
  std::vector<std::vector<int32_t>> tokens;  // [step][sequence]
  std::vector<SequenceStats> stats;          // [sequence] after the last step
};

// Prompts prefilled by RunReserved (their greedy tokens from the logits), then kSteps decode
// steps through RunDecodeSteps.
Outcome Decode(kernels::DeviceDType dtype, bool overlap) {
  Outcome out;
  CudaModelAndCache m = MakeCudaModel("qwen3_dms_hd64", {.dtype = dtype, .device_sampling = true});
  if (m.model == nullptr) return out;
  SingleRankCollectives comm;
  const int vocab = m.model->config().vocab_size;
  std::vector<SeqId> ids;
  std::vector<SequenceChunk> prompts;
  for (SeqId id = 0; id < kSequences; ++id) {
    EXPECT_TRUE(m.cache->AddSequence(id).ok());
    ids.push_back(id);
    const int32_t t = static_cast<int32_t>(id);
    prompts.push_back({.seq_id = id, .tokens = {3, 9, 20 + t, 4, 7, 11 + 2 * t}});
  }
  EXPECT_TRUE(m.model->Reserve(prompts, *m.cache).ok());
  absl::StatusOr<ForwardResult> prefill = m.model->RunReserved(prompts, *m.cache, comm);
  EXPECT_TRUE(prefill.ok()) << prefill.status();
  if (!prefill.ok()) return out;
  std::vector<int32_t> first;
  for (size_t c = 0; c < prompts.size(); ++c) {
    const float* row = prefill->logits.data() + static_cast<size_t>(prefill->first_row[c]) * vocab;
    first.push_back(static_cast<int32_t>(std::max_element(row, row + vocab) - row));
  }
  const absl::Status status = m.model->RunDecodeSteps(
      ids, first, kSteps, overlap, *m.cache, comm, [&](int, const ForwardResult& r) {
        std::vector<int32_t> step;
        for (const auto& s : r.sampled) step.push_back(s.has_value() ? s->token_id : -1);
        out.tokens.push_back(step);
      });
  EXPECT_TRUE(status.ok()) << status;
  for (SeqId id : ids) out.stats.push_back(m.cache->SequenceStatsOf(id));
  return out;
}

class OverlapGpuTest : public ::testing::TestWithParam<kernels::DeviceDType> {};

TEST_P(OverlapGpuTest, SameTokensAndCacheWithOverlapOnAndOff) {
  RAMI_REQUIRE_CUDA_DEVICE();
  const Outcome off = Decode(GetParam(), /*overlap=*/false);
  const Outcome on = Decode(GetParam(), /*overlap=*/true);
  ASSERT_EQ(off.tokens.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(on.tokens.size(), static_cast<size_t>(kSteps));
  for (int step = 0; step < kSteps; ++step) {
    ASSERT_EQ(on.tokens[step], off.tokens[step]) << "step " << step;
  }
  ASSERT_EQ(on.stats.size(), off.stats.size());
  for (size_t i = 0; i < off.stats.size(); ++i) {
    const std::string where = "sequence " + std::to_string(i);
    testing::ExpectSameStats(on.stats[i], off.stats[i], where);
    // The same steps on the same pool: the same pages too.
    EXPECT_EQ(on.stats[i].page_refs, off.stats[i].page_refs) << where;
    EXPECT_EQ(on.stats[i].unshared_pages, off.stats[i].unshared_pages) << where;
  }
  // The run evicted something: the steps exercised the commit of decided tokens.
  int64_t evicted = 0;
  for (const SequenceStats& s : off.stats) evicted += s.evicted;
  EXPECT_GT(evicted, 0);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, OverlapGpuTest,
                         ::testing::Values(kernels::DeviceDType::kF32, kernels::DeviceDType::kBF16),
                         [](const ::testing::TestParamInfo<kernels::DeviceDType>& info) {
                           return info.param == kernels::DeviceDType::kF32 ? "fp32" : "bf16";
                         });

}  // namespace
}  // namespace rami
