// Sampling: the CUDA kernel against SampleCpu — greedy, temperature, top-k (selected in the
// kernel up to kSampleSelectMax, sorted above), top-p, min-p and their combinations, rows
// sharing a logits row (fork children), ties, several sort passes —
// over vocabularies 1/7/513/151936. The same Philox draw and canonical order must give the
// same token on every row; log-probs within 1e-5. Skips without a GPU.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/sampling.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;

// What SampleCuda wrote, copied back.
struct DeviceOutputs {
  std::vector<int32_t> token, top_ids;
  std::vector<float> logprob, top_logprobs;
};

// `cpu`'s inputs (host arrays; `logits_rows` rows of logits) copied to the device and sampled
// there, with a workspace unless `sort` is false (every drawing row has top_k ≤
// kSampleSelectMax); null inputs stay null.
DeviceOutputs SampleOnDevice(const kernels::SampleParams& cpu, size_t logits_rows,
                             bool sort = true) {
  const size_t rows = cpu.rows, vocab = cpu.vocab;
  const size_t top = rows * static_cast<size_t>(std::max(cpu.max_logprobs, 0));
  auto host = [](const auto* p, size_t n) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(p)>>;
    return p == nullptr ? std::vector<T>() : std::vector<T>(p, p + n);
  };
  DeviceArray<float> logits(host(cpu.logits, logits_rows * vocab));
  DeviceArray<float> temperature(host(cpu.temperature, rows)), top_p(host(cpu.top_p, rows));
  DeviceArray<float> min_p(host(cpu.min_p, rows)), logprob(rows), top_logprobs(top);
  DeviceArray<int32_t> logits_row(host(cpu.logits_row, rows)), top_k(host(cpu.top_k, rows));
  DeviceArray<int32_t> num_logprobs(host(cpu.num_logprobs, rows)), token(rows), top_ids(top);
  DeviceArray<uint64_t> seed(host(cpu.seed, rows)), index(host(cpu.index, rows));
  DeviceArray<uint8_t> workspace(sort ? kernels::SampleWorkspaceBytes(cpu.rows, cpu.vocab) : 0);
  kernels::SampleParams gpu = cpu;
  gpu.logits = logits.get();
  if (cpu.logits_row != nullptr) gpu.logits_row = logits_row.get();
  gpu.temperature = temperature.get();
  gpu.top_k = top_k.get();
  if (cpu.top_p != nullptr) gpu.top_p = top_p.get();
  if (cpu.min_p != nullptr) gpu.min_p = min_p.get();
  gpu.seed = seed.get();
  gpu.index = index.get();
  gpu.num_logprobs = num_logprobs.get();
  gpu.token = token.get();
  gpu.logprob = logprob.get();
  if (cpu.top_ids != nullptr) gpu.top_ids = top_ids.get();
  if (cpu.top_logprobs != nullptr) gpu.top_logprobs = top_logprobs.get();
  const kernels::SampleWorkspace ws =
      sort ? kernels::SampleWorkspace{.data = workspace.get(),
                                      .bytes = kernels::SampleWorkspaceBytes(cpu.rows, cpu.vocab),
                                      .any_sorted = true}
           : kernels::SampleWorkspace{.any_sorted = false};
  EXPECT_EQ(kernels::SampleCuda(gpu, ws, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return {token.ToHost(), top_ids.ToHost(), logprob.ToHost(), top_logprobs.ToHost()};
}

struct Knobs {
  float temperature;
  int32_t top_k;
  float top_p, min_p;
};

// A batch to sample: `rows` output rows over logits in steps of 1 / `steps` (ties), output row r
// reading logits row r / 3 when `shared` (fork children) and taking knobs[(r + offset) % size],
// num_logprobs r % (max_lp + 1), random seeds and token indices. `params` points into it.
struct Batch {
  std::vector<float> logits, temperature, top_p, min_p, logprob, top_lp;
  std::vector<int32_t> logits_row, top_k, num_logprobs, token, top_ids;
  std::vector<uint64_t> seed, index;
  kernels::SampleParams params;

  Batch(int rows, int vocab, bool shared, float steps, const std::vector<Knobs>& knobs, int offset,
        int max_lp, std::mt19937& rng)
      : logits(static_cast<size_t>(shared ? (rows + 2) / 3 : rows) * vocab),
        temperature(rows),
        top_p(rows),
        min_p(rows),
        logprob(rows),
        top_lp(rows * max_lp),
        logits_row(rows),
        top_k(rows),
        num_logprobs(rows),
        token(rows),
        top_ids(rows * max_lp),
        seed(rows),
        index(rows) {
    std::normal_distribution<float> normal(0.0f, 2.0f);
    for (float& v : logits) v = std::round(normal(rng) * steps) / steps;
    for (int r = 0; r < rows; ++r) {
      const Knobs& k = knobs[(r + offset) % knobs.size()];
      logits_row[r] = shared ? r / 3 : r;
      temperature[r] = k.temperature;
      top_k[r] = k.top_k;
      top_p[r] = k.top_p;
      min_p[r] = k.min_p;
      seed[r] = (static_cast<uint64_t>(rng()) << 32) | rng();
      index[r] = rng() % 1000;
      num_logprobs[r] = r % (max_lp + 1);
    }
    params = {.logits = logits.data(),
              .logits_row = logits_row.data(),
              .temperature = temperature.data(),
              .top_k = top_k.data(),
              .top_p = top_p.data(),
              .min_p = min_p.data(),
              .seed = seed.data(),
              .index = index.data(),
              .num_logprobs = num_logprobs.data(),
              .token = token.data(),
              .logprob = logprob.data(),
              .top_ids = top_ids.data(),
              .top_logprobs = top_lp.data(),
              .rows = rows,
              .vocab = vocab,
              .max_logprobs = max_lp};
  }
};

// The batch sampled by the CPU twin and on the device (with the sort's workspace unless `sort`
// is false): the same tokens and top-n ids, log-probs within 1e-5.
void ExpectDeviceMatchesCpu(Batch& b, bool sort, const std::string& what) {
  kernels::SampleCpu(b.params);
  const DeviceOutputs out = SampleOnDevice(b.params, b.logits.size() / b.params.vocab, sort);
  EXPECT_EQ(out.token, b.token) << what;
  EXPECT_TRUE(
      testing::AllClose(out.logprob, b.logprob, {.atol = 1e-5, .rtol = 1e-6}, what + " logprob"));
  EXPECT_EQ(out.top_ids, b.top_ids) << what;
  EXPECT_TRUE(testing::AllClose(out.top_logprobs, b.top_lp, {.atol = 1e-5, .rtol = 1e-6},
                                what + " top logprobs"));
}

TEST(SamplingGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(41);
  const std::vector<Knobs> knobs = {
      {0.0f, 0, 0.0f, 0.0f},    {1.0f, 0, 0.0f, 0.0f},       {0.7f, 50, 0.0f, 0.0f},
      {1.0f, 0, 0.9f, 0.0f},    {1.3f, 0, 0.0f, 0.05f},      {0.8f, 40, 0.95f, 0.02f},
      {1.0f, 1, 0.0f, 0.0f},    {0.5f, 0, 0.5f, 0.1f},       {2.0f, 3, 1.0f, 0.0f},
      {1e-3f, 0, 0.0f, 0.0f},   {1.0f, 100000, 0.99f, 0.0f}, {0.6f, 20, 0.95f, 0.0f},
      {1.0f, 1024, 0.0f, 0.0f}, {1.0f, 1025, 0.9f, 0.0f}};
  for (int rows : {1, 3, 17, 40}) {
    for (int vocab : {1, 7, 513, 151936}) {
      for (bool shared : {false, true}) {
        Batch b(rows, vocab, shared, 8.0f, knobs, vocab, /*max_lp=*/5, rng);
        ExpectDeviceMatchesCpu(b, /*sort=*/true,
                               "rows " + std::to_string(rows) + " vocab " + std::to_string(vocab) +
                                   (shared ? " shared" : ""));
      }
    }
  }
}

// Rows whose top-k is at most kSampleSelectMax select their first k tokens in the kernel: no
// sort and no workspace, the CPU twin's tokens — ties at the k-th logit (logits in steps of
// 1/4) go to the lowest ids, k up to the limit, k above a small vocabulary, with top-p and
// min-p after.
TEST(SamplingGpu, TopKRowsSelectWithoutTheSort) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(47);
  const std::vector<Knobs> knobs = {{0.6f, 20, 0.95f, 0.0f},  {1.0f, 2, 0.0f, 0.0f},
                                    {1.0f, 1024, 0.0f, 0.0f}, {0.8f, 40, 0.0f, 0.05f},
                                    {1.5f, 333, 0.7f, 0.0f},  {1.0f, 1000, 0.99f, 0.01f}};
  for (int vocab : {7, 513, 2048, 151936}) {
    Batch b(/*rows=*/24, vocab, /*shared=*/false, 4.0f, knobs, 0, /*max_lp=*/3, rng);
    ExpectDeviceMatchesCpu(b, /*sort=*/false, "vocab " + std::to_string(vocab));
  }
}

// Greedy-only batches skip the sort and need no workspace.
TEST(SamplingGpu, GreedyWithoutWorkspace) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(43);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  constexpr int kRows = 17, kVocab = 513;
  std::vector<float> logits(kRows * kVocab);
  for (float& v : logits) v = std::round(normal(rng) * 2.0f) / 2.0f;
  std::vector<float> zeros_f(kRows, 0.0f);
  std::vector<int32_t> zeros_i(kRows, 0), token(kRows);
  std::vector<uint64_t> zeros_u(kRows, 0);
  std::vector<float> logprob(kRows);
  kernels::SampleParams cpu{.logits = logits.data(),
                            .temperature = zeros_f.data(),
                            .top_k = zeros_i.data(),
                            .top_p = zeros_f.data(),
                            .min_p = zeros_f.data(),
                            .seed = zeros_u.data(),
                            .index = zeros_u.data(),
                            .num_logprobs = zeros_i.data(),
                            .token = token.data(),
                            .logprob = logprob.data(),
                            .rows = kRows,
                            .vocab = kVocab};
  kernels::SampleCpu(cpu);
  DeviceArray<float> dlogits(logits), dzf(zeros_f), dlogprob(kRows);
  DeviceArray<int32_t> dzi(zeros_i), dtoken(kRows);
  DeviceArray<uint64_t> dzu(zeros_u);
  kernels::SampleParams gpu = cpu;
  gpu.logits = dlogits.get();
  gpu.temperature = gpu.top_p = gpu.min_p = dzf.get();
  gpu.top_k = gpu.num_logprobs = dzi.get();
  gpu.seed = gpu.index = dzu.get();
  gpu.token = dtoken.get();
  gpu.logprob = dlogprob.get();
  ASSERT_EQ(kernels::SampleCuda(gpu, {.any_sorted = false}, nullptr), cudaSuccess);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(dtoken.ToHost(), token);
  EXPECT_TRUE(testing::AllClose(dlogprob.ToHost(), logprob, {.atol = 1e-5, .rtol = 1e-6}));
}

// Rows without a distribution (a NaN, a +Inf, every logit -inf) are flagged as on the CPU:
// token -1, logprob NaN, top-n -1 / -inf; the good rows around them are sampled as usual.
TEST(SamplingGpu, FlagsRowsWithoutADistributionAsTheCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  constexpr int kRows = 8, kVocab = 1500, kMaxLp = 3;
  std::mt19937 rng(47);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(kRows * kVocab);
  for (float& v : logits) v = normal(rng);
  auto row = [&](int r) { return logits.begin() + r * kVocab; };
  row(1)[1234] = NAN;
  row(3)[7] = INFINITY;
  std::fill(row(5), row(5) + kVocab, -INFINITY);
  row(6)[kVocab - 1] = NAN;
  std::vector<float> temperature = {0, 0, 1, 1, 0.7f, 1, 1, 0}, zeros_f(kRows, 0.0f);
  std::vector<int32_t> top_k(kRows, 0), num_lp(kRows, kMaxLp), token(kRows),
      top_ids(kRows * kMaxLp);
  std::vector<uint64_t> seed(kRows, 3), index(kRows, 9);
  std::vector<float> logprob(kRows), top_lp(kRows * kMaxLp);
  kernels::SampleParams cpu{.logits = logits.data(),
                            .temperature = temperature.data(),
                            .top_k = top_k.data(),
                            .top_p = zeros_f.data(),
                            .min_p = zeros_f.data(),
                            .seed = seed.data(),
                            .index = index.data(),
                            .num_logprobs = num_lp.data(),
                            .token = token.data(),
                            .logprob = logprob.data(),
                            .top_ids = top_ids.data(),
                            .top_logprobs = top_lp.data(),
                            .rows = kRows,
                            .vocab = kVocab,
                            .max_logprobs = kMaxLp};
  kernels::SampleCpu(cpu);
  for (int r : {1, 3, 5, 6}) EXPECT_EQ(token[r], -1) << r;
  for (int r : {0, 2, 4, 7}) EXPECT_GE(token[r], 0) << r;

  const DeviceOutputs out = SampleOnDevice(cpu, kRows);
  EXPECT_EQ(out.token, token);
  EXPECT_TRUE(testing::AllClose(out.logprob, logprob, {.atol = 1e-5, .rtol = 1e-6}));
  EXPECT_EQ(out.top_ids, top_ids);
  EXPECT_TRUE(testing::AllClose(out.top_logprobs, top_lp, {.atol = 1e-5, .rtol = 1e-6}));
}

}  // namespace
}  // namespace rami
