// Tensor parallelism of the CUDA backend across two GPUs (skipped with fewer): a golden model as
// two CudaModel ranks, one thread and one GPU each, joined by NCCL (NcclCollectives over an
// in-process rendezvous store), against the same model on one GPU. fp32, the same steps on both
// (two prompts in chunks, then decodes teacher-forced with the one-GPU model's greedy tokens;
// every other decode step asks for greedy samples, so the device sampler reads the gathered
// vocabulary-parallel logits). Each rank's logits within 1e-4·(1 + |x|) of the one-GPU model's
// (the sum over ranks changes the order of the fp32 reductions), the ranks' logits equal to each
// other, their sampled tokens the one-GPU model's argmax, and each rank's DMS live counts those
// of its KV heads in the one-GPU cache.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "tests/golden/golden_files.h"
#include "tests/gpu/cuda_model_testing.h"
#include "tests/gpu/require_device.h"
#include "tests/testing/safetensors_writer.h"
#include "worker/collectives/nccl_collectives.h"
#include "worker/collectives/rendezvous_store.h"
#include "worker/cpu/model.h"
#include "worker/cuda/cuda_model.h"

namespace rami {

using collectives::Collectives;
using collectives::InMemoryRendezvousStore;
using collectives::NcclCollectives;
using collectives::RendezvousStore;
using cpu::Model;
using engine::ForwardResult;
using engine::SampleRequest;
using engine::SequenceChunk;
using kv::CachePolicy;
using kv::KvCache;
using kv::SeqId;

namespace {

constexpr int kWorld = 2, kSteps = 12;

// RunReserved checks only the host group's size: the device tensors go through NCCL.
class HostWorld final : public Collectives {
 public:
  HostWorld(int rank, int world) : rank_(rank), world_(world) {}
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  absl::Status AllReduceSum(float*, size_t) override { return Unused(); }
  absl::Status AllGather(const float*, size_t, float*) override { return Unused(); }
  absl::Status Broadcast(float*, size_t, int) override { return Unused(); }

 private:
  static absl::Status Unused() { return absl::InternalError("host collectives unused here"); }
  int rank_, world_;
};

struct StepResult {
  std::vector<float> logits;
  std::vector<int32_t> first_row;
  std::vector<int32_t> sampled;            // per chunk; -1: none
  std::vector<std::vector<int32_t>> live;  // per chunk: [layer · kv_heads]
  int kv_heads = 0;                        // this rank's
};

// The step schedule: prompts of seq 1 (24 + 9 tokens) and seq 2 (17, joining at step 1), then
// decodes; the tokens of step i ≥ 2 come from `next` (the one-GPU model's greedy choices).
std::vector<SequenceChunk> Chunks(int step, const std::vector<int32_t>& next, bool sample) {
  auto prompt = [](int n, int salt) {
    std::vector<int32_t> t(n);
    for (int i = 0; i < n; ++i) t[i] = (7 * i + 3 * salt) % 100;
    return t;
  };
  if (step == 0) return {{.seq_id = 1, .tokens = prompt(24, 1)}};
  if (step == 1) {
    return {{.seq_id = 1, .tokens = prompt(9, 2)}, {.seq_id = 2, .tokens = prompt(17, 3)}};
  }
  std::vector<SequenceChunk> chunks;
  for (SeqId id : {1, 2}) {
    SequenceChunk c{.seq_id = id, .tokens = {next[id]}};
    if (sample) c.sample = SampleRequest{.params = {.temperature = 0.0f, .logprobs = 2}};
    chunks.push_back(std::move(c));
  }
  return chunks;
}

// Runs the schedule on one rank. World 1 is the reference: it records in `feeds` the decode
// inputs of every step (its own greedy tokens so far); the ranks of a larger world replay them.
void RunRank(const std::string& dir, int rank, int world, RendezvousStore* store,
             std::vector<std::vector<int32_t>>* feeds, std::vector<StepResult>* results) {
  ASSERT_EQ(cudaSetDevice(rank), cudaSuccess);
  absl::StatusOr<std::unique_ptr<Model>> cpu = Model::Load(dir, {rank, world});
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  const CachePolicy policy = (*cpu)->shape().DefaultCachePolicy();
  absl::StatusOr<std::unique_ptr<cuda::CudaModel>> model =
      cuda::CudaModel::Create((*cpu)->shape(), (*cpu)->weights(),
                              {.dtype = kernels::DeviceDType::kF32, .world_size = world});
  ASSERT_TRUE(model.ok()) << model.status();
  if (world > 1) {
    absl::StatusOr<std::unique_ptr<NcclCollectives>> nccl =
        NcclCollectives::Create({.rank = rank,
                                 .world_size = world,
                                 .device = rank,
                                 .group_id = "cuda-tp-test",
                                 .stream = (*model)->stream(),
                                 .timeout = absl::Seconds(60)},
                                store);
    ASSERT_TRUE(nccl.ok()) << nccl.status();
    (*model)->set_device_collectives(std::move(*nccl));
  }
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      (*model)->MakeCache(policy, gpu_test::kTestCache);
  ASSERT_TRUE(cache.ok()) << cache.status();
  ASSERT_TRUE((*cache)->AddSequence(1).ok() && (*cache)->AddSequence(2).ok());
  HostWorld comm(rank, world);
  const int vocab = (*model)->config().vocab_size;
  std::vector<int32_t> next(3, 0);  // world 1: the greedy token of each sequence so far
  for (int step = 0; step < kSteps; ++step) {
    if (world == 1) feeds->push_back(next);
    const std::vector<SequenceChunk> chunks = Chunks(step, (*feeds)[step], step % 2 == 1);
    ASSERT_TRUE((*model)->Reserve(chunks, **cache).ok()) << "rank " << rank << " step " << step;
    absl::StatusOr<ForwardResult> out = (*model)->RunReserved(chunks, **cache, comm);
    ASSERT_TRUE(out.ok()) << "rank " << rank << " step " << step << ": " << out.status();
    StepResult r;
    r.logits = out->logits;
    r.first_row = out->first_row;
    r.kv_heads = (*cache)->num_kv_heads();
    for (size_t c = 0; c < chunks.size(); ++c) {
      const bool sampled = c < out->sampled.size() && out->sampled[c].has_value();
      r.sampled.push_back(sampled ? out->sampled[c]->token_id : -1);
      std::vector<int32_t> live;
      for (int layer = 0; layer < (*model)->config().num_layers; ++layer) {
        for (int h = 0; h < (*cache)->num_kv_heads(); ++h) {
          live.push_back(static_cast<int32_t>((*cache)->StreamLive(chunks[c].seq_id, layer, h)));
        }
      }
      r.live.push_back(std::move(live));
      int32_t token = r.sampled.back();
      if (token < 0) {
        const float* row = out->logits.data() + static_cast<size_t>(out->first_row[c]) * vocab;
        token = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
      }
      next[chunks[c].seq_id] = token;
    }
    results->push_back(std::move(r));
  }
}

// The checkpoint in `dir` on kWorld GPUs against one GPU: logits, samples, live counts.
void ExpectRanksMatchOneGpu(const std::string& dir) {
  // The one-GPU reference first (its tokens drive both runs), then the ranks at once.
  std::vector<std::vector<int32_t>> feeds;
  std::vector<StepResult> want;
  ASSERT_NO_FATAL_FAILURE(RunRank(dir, 0, 1, nullptr, &feeds, &want));
  InMemoryRendezvousStore store;
  std::vector<std::vector<StepResult>> got(kWorld);
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r) {
    threads.emplace_back([&, r] { RunRank(dir, r, kWorld, &store, &feeds, &got[r]); });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < kWorld; ++r) ASSERT_EQ(got[r].size(), want.size()) << "rank " << r;
  for (int step = 0; step < kSteps; ++step) {
    const StepResult& w = want[step];
    for (int r = 0; r < kWorld; ++r) {
      const StepResult& g = got[r][step];
      const std::string where = "rank " + std::to_string(r) + " step " + std::to_string(step);
      ASSERT_EQ(g.first_row, w.first_row) << where;
      ASSERT_EQ(g.sampled, w.sampled) << where;
      ASSERT_EQ(g.logits.size(), w.logits.size()) << where;
      for (size_t i = 0; i < w.logits.size(); ++i) {
        ASSERT_NEAR(g.logits[i], w.logits[i], 1e-4 * (1 + std::fabs(w.logits[i])))
            << where << " element " << i;
        ASSERT_NEAR(g.logits[i], got[0][step].logits[i], 1e-6 * (1 + std::fabs(w.logits[i])))
            << where << " vs rank 0, element " << i;
      }
      // Rank r holds KV heads [r·Hl, (r + 1)·Hl) of every layer, Hl = H / world.
      const int hl = g.kv_heads, h = w.kv_heads;
      ASSERT_EQ(hl * kWorld, h) << where;
      for (size_t c = 0; c < w.live.size(); ++c) {
        const int layers = static_cast<int>(w.live[c].size()) / h;
        for (int layer = 0; layer < layers; ++layer) {
          for (int k = 0; k < hl; ++k) {
            ASSERT_EQ(g.live[c][layer * hl + k], w.live[c][layer * h + r * hl + k])
                << where << " chunk " << c << " layer " << layer << " local head " << k;
          }
        }
      }
    }
  }
}

class CudaTensorParallelGpuTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaTensorParallelGpuTest, TwoRanksMatchOneGpu) {
  RAMI_REQUIRE_CUDA_DEVICES(kWorld);
  ExpectRanksMatchOneGpu(testing::GoldenModelDir(GetParam()));
}

// A vocabulary the ranks cannot split evenly (251 = 126 + 125 and a padding row): the padded
// LM-head shards, the all-gather and the host layout / device sampler drop the padding.
TEST(CudaTensorParallelOddVocabGpuTest, TwoRanksMatchOneGpu) {
  RAMI_REQUIRE_CUDA_DEVICES(kWorld);
  absl::StatusOr<testing::ScopedTempDir> odd = testing::CopyWithVocabulary(
      testing::GoldenModelDir("qwen3_dms_hd64"), 251, ::testing::TempDir());
  ASSERT_TRUE(odd.ok()) << odd.status();
  ExpectRanksMatchOneGpu(odd->path());
}

INSTANTIATE_TEST_SUITE_P(Goldens, CudaTensorParallelGpuTest,
                         ::testing::Values("qwen3_dms_hd64", "qwen3_dms_adapter_hd64",
                                           "llama3_hd128"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace rami
