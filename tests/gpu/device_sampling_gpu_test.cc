// Sampling on the device (worker/cuda/device_sampler.h) through the CudaModel against the host
// sampler (worker/engine/sampler.h) on the logits of the same model with device sampling off, fp32
// and bf16, on a transformers golden: four sequences decoding with greedy, temperature + top-k,
// top-p + min-p and plain temperature requests (seeds and token indices as the Engine sets them),
// next to a prefill chunk whose logits still come back. Every token and top-n id equal, log-probs
// within 1e-5 (the kernel's fp32 log-softmax vs the CPU's, same inputs); sampled chunks have no
// logits row (first_row −1), the prefill chunk's row is the host model's (within 1e-6: the
// same launches, possibly another cuBLASLt handle's algorithm).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "tests/gpu/cuda_model_testing.h"
#include "tests/gpu/require_device.h"
#include "worker/cuda/cuda_model.h"
#include "worker/engine/sampler.h"

namespace rami {

using collectives::SingleRankCollectives;
using engine::ForwardResult;
using engine::Sample;
using engine::SampledToken;
using engine::SampleRequest;
using engine::SequenceChunk;
using kv::SeqId;

namespace {

using gpu_test::CudaModelAndCache;
using gpu_test::MakeCudaModel;

class DeviceSamplingGpuTest : public ::testing::TestWithParam<kernels::DeviceDType> {};

TEST_P(DeviceSamplingGpuTest, SameTokensAsTheHostSampler) {
  RAMI_REQUIRE_CUDA_DEVICE();
  CudaModelAndCache device =
      MakeCudaModel("qwen3_dms_hd64", {.dtype = GetParam(), .device_sampling = true});
  CudaModelAndCache host =
      MakeCudaModel("qwen3_dms_hd64", {.dtype = GetParam(), .device_sampling = false});
  ASSERT_TRUE(device.model != nullptr && host.model != nullptr);
  SingleRankCollectives comm;
  const int vocab = host.model->config().vocab_size;
  const std::vector<SampleRequest> kinds = {
      {.params = {.temperature = 0.0f, .logprobs = 2}},
      {.params = {.temperature = 0.9f, .top_k = 20, .seed = 3, .logprobs = 5}},
      {.params = {.temperature = 1.1f, .top_p = 0.8f, .min_p = 0.05f, .seed = 4}},
      {.params = {.temperature = 1.0f, .seed = 5, .logprobs = 20}}};
  std::vector<int32_t> next(kinds.size() + 1, 1);
  std::vector<uint64_t> generated(kinds.size(), 0);
  for (SeqId id = 0; id <= static_cast<SeqId>(kinds.size()); ++id) {
    ASSERT_TRUE(device.cache->AddSequence(id).ok());
    ASSERT_TRUE(host.cache->AddSequence(id).ok());
  }
  for (int step = 0; step < 16; ++step) {
    std::vector<SequenceChunk> chunks;
    for (SeqId id = 0; id < static_cast<SeqId>(kinds.size()); ++id) {
      if (step == 0) {  // prompts, no request
        chunks.push_back({.seq_id = id, .tokens = {3, 9, static_cast<int32_t>(20 + id), 4, 7}});
        continue;
      }
      SampleRequest r = kinds[id];
      r.index = generated[id];
      chunks.push_back({.seq_id = id, .tokens = {next[id]}, .sample = r});
    }
    // A prefill chunk of another sequence in the same step keeps its logits row.
    const SeqId other = static_cast<SeqId>(kinds.size());
    if (step < 4) chunks.push_back({.seq_id = other, .tokens = {5, 6, 7}});
    for (CudaModelAndCache* s : {&device, &host})
      ASSERT_TRUE(s->model->Reserve(chunks, *s->cache).ok());
    absl::StatusOr<ForwardResult> got = device.model->RunReserved(chunks, *device.cache, comm);
    absl::StatusOr<ForwardResult> want = host.model->RunReserved(chunks, *host.cache, comm);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(want.ok()) << want.status();
    for (size_t c = 0; c < chunks.size(); ++c) {
      const std::string where = "step " + std::to_string(step) + " chunk " + std::to_string(c);
      const float* row = want->logits.data() + static_cast<size_t>(want->first_row[c]) * vocab;
      if (!chunks[c].sample.has_value()) {
        ASSERT_GE(got->first_row[c], 0) << where;
        const float* mine = got->logits.data() + static_cast<size_t>(got->first_row[c]) * vocab;
        for (int v = 0; v < vocab; ++v) {
          ASSERT_NEAR(mine[v], row[v], 1e-6 * (1 + std::fabs(row[v]))) << where << " vocab " << v;
        }
        if (step == 0) {  // the prompt's greedy token starts the decode
          next[chunks[c].seq_id] = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
        }
        continue;
      }
      ASSERT_EQ(got->first_row[c], -1) << where;
      ASSERT_TRUE(c < got->sampled.size() && got->sampled[c].has_value()) << where;
      SampleRequest r = *chunks[c].sample;
      r.row = 0;
      absl::StatusOr<std::vector<SampledToken>> expect =
          Sample({row, static_cast<size_t>(vocab)}, vocab, {&r, 1});
      ASSERT_TRUE(expect.ok()) << expect.status();
      const SampledToken& g = *got->sampled[c];
      const SampledToken& w = (*expect)[0];
      ASSERT_EQ(g.token_id, w.token_id) << where;
      EXPECT_NEAR(g.logprob, w.logprob, 1e-5) << where;
      ASSERT_EQ(g.top.size(), w.top.size()) << where;
      for (size_t j = 0; j < w.top.size(); ++j) {
        EXPECT_EQ(g.top[j].token_id, w.top[j].token_id) << where << " top " << j;
        EXPECT_NEAR(g.top[j].logprob, w.top[j].logprob, 1e-5) << where << " top " << j;
      }
      next[chunks[c].seq_id] = g.token_id;
      ++generated[chunks[c].seq_id];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DeviceSamplingGpuTest,
                         ::testing::Values(kernels::DeviceDType::kF32, kernels::DeviceDType::kBF16),
                         [](const ::testing::TestParamInfo<kernels::DeviceDType>& info) {
                           return info.param == kernels::DeviceDType::kF32 ? "fp32" : "bf16";
                         });

}  // namespace
}  // namespace rami
