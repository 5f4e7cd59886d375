// Decode steps as CUDA graphs (worker/cuda/decode_graphs.h) against the same CudaModel launched
// eagerly, in fp32, on the head_dim-64/128 transformers goldens: sequences with long prompts
// (so that decode attention splits), decode batches of changing sizes (buckets 1, 4, 8, 16,
// padded), a long prefill in the middle that grows the scratch buffers (the graphs must be
// captured again), and teacher forcing with the eager model's greedy tokens. Every logits row
// within 1e-4·(1 + |x|) of the eager one (a padded GEMM may pick another cuBLASLt algorithm),
// the same DMS live counts every step, and graphs really replayed: captures ≥ 2 (one recapture
// after the growth), replays ≥ half the decode steps, no failed capture.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "tests/gpu/cuda_model_testing.h"
#include "tests/gpu/require_device.h"
#include "worker/cuda/cuda_model.h"

namespace rami {

using checkpoint::ModelConfig;
using collectives::SingleRankCollectives;
using engine::ForwardResult;
using engine::SequenceChunk;
using kv::SeqId;

namespace {

using gpu_test::CudaModelAndCache;
using gpu_test::MakeCudaModel;

class CudaGraphsGpuTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaGraphsGpuTest, SameResultsAsEagerLaunches) {
  RAMI_REQUIRE_CUDA_DEVICE();
  const kernels::DeviceDType f32 = kernels::DeviceDType::kF32;
  CudaModelAndCache graphed = MakeCudaModel(GetParam(), {.dtype = f32, .cuda_graphs = true});
  CudaModelAndCache eager = MakeCudaModel(GetParam(), {.dtype = f32, .cuda_graphs = false});
  ASSERT_TRUE(graphed.model != nullptr && eager.model != nullptr);
  SingleRankCollectives comm;
  const ModelConfig& config = eager.model->config();
  const int vocab = config.vocab_size;
  std::mt19937 rng(3);
  auto prompt = [&](int n) {
    std::vector<int32_t> t(n);
    for (int32_t& x : t) x = static_cast<int32_t>(rng() % vocab);
    return t;
  };
  constexpr int kSeqs = 11;
  std::vector<int32_t> next(kSeqs + 1, 0);
  auto step = [&](const std::vector<SequenceChunk>& chunks, const std::string& where) {
    for (CudaModelAndCache* s : {&graphed, &eager}) {
      ASSERT_TRUE(s->model->Reserve(chunks, *s->cache).ok()) << where;
    }
    absl::StatusOr<ForwardResult> got = graphed.model->RunReserved(chunks, *graphed.cache, comm);
    absl::StatusOr<ForwardResult> want = eager.model->RunReserved(chunks, *eager.cache, comm);
    ASSERT_TRUE(got.ok()) << where << ": " << got.status();
    ASSERT_TRUE(want.ok()) << where << ": " << want.status();
    ASSERT_EQ(got->first_row, want->first_row);
    ASSERT_EQ(got->logits.size(), want->logits.size());
    for (size_t i = 0; i < want->logits.size(); ++i) {
      ASSERT_NEAR(got->logits[i], want->logits[i], 1e-4 * (1 + std::fabs(want->logits[i])))
          << where << " element " << i;
    }
    for (size_t c = 0; c < chunks.size(); ++c) {
      // The chunk's last row: the eager model's greedy token feeds both.
      const int n = static_cast<int>(chunks[c].tokens.size());
      const int row = want->first_row[c] + (chunks[c].all_logits ? n - 1 : 0);
      const float* x = want->logits.data() + static_cast<size_t>(row) * vocab;
      next[chunks[c].seq_id] = static_cast<int32_t>(std::max_element(x, x + vocab) - x);
      for (int layer = 0; layer < config.num_layers; ++layer) {
        for (int h = 0; h < eager.cache->num_kv_heads(); ++h) {
          ASSERT_EQ(graphed.cache->StreamLive(chunks[c].seq_id, layer, h),
                    eager.cache->StreamLive(chunks[c].seq_id, layer, h))
              << where << " seq " << chunks[c].seq_id << " layer " << layer << " head " << h;
        }
      }
    }
  };
  for (SeqId id = 0; id <= kSeqs; ++id) {
    ASSERT_TRUE(graphed.cache->AddSequence(id).ok());
    ASSERT_TRUE(eager.cache->AddSequence(id).ok());
  }
  // Prompts, one per step: two of 700 tokens (their decode attention splits), the others 5…35.
  for (SeqId id = 0; id < kSeqs; ++id) {
    const int n = id < 2 ? 700 : 5 + 3 * static_cast<int>(id);
    step({{.seq_id = id, .tokens = prompt(n)}}, "prefill " + std::to_string(id));
  }
  const int sizes[] = {11, 3, 11, 1, 7, 11, 3, 1, 11, 7};
  int decode_steps = 0;
  for (int i = 0; i < 40; ++i) {
    if (i == 20) {  // a long prefill alone grows every scratch buffer: graphs are recaptured
      step({{.seq_id = kSeqs, .tokens = prompt(1000)}}, "long prefill");
      continue;
    }
    std::vector<SequenceChunk> chunks;
    for (SeqId id = 0; id < sizes[i % 10]; ++id)
      chunks.push_back({.seq_id = id, .tokens = {next[id]}});
    step(chunks, "decode " + std::to_string(i));
    ++decode_steps;
  }
  const engine::DecodeGraphStats& s = graphed.model->graph_stats();
  std::printf(
      "[%s] graphs: %lld eager, %lld captures, %lld replays, %lld failed (%d decode steps)\n",
      GetParam().c_str(), static_cast<long long>(s.eager), static_cast<long long>(s.captures),
      static_cast<long long>(s.replays), static_cast<long long>(s.failed), decode_steps);
  EXPECT_EQ(s.failed, 0);
  EXPECT_GE(s.captures, 2);
  EXPECT_GE(s.replays, decode_steps / 2);
  EXPECT_EQ(s.eager + s.replays, decode_steps);
  EXPECT_EQ(eager.model->graph_stats().replays, 0);
}

INSTANTIATE_TEST_SUITE_P(Goldens, CudaGraphsGpuTest,
                         ::testing::Values("qwen3_dms_hd64", "qwen3_dms_adapter_hd64",
                                           "llama3_hd128"));

}  // namespace
}  // namespace rami
