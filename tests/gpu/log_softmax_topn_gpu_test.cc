// Log-softmax + top-n: the CUDA kernel against its CPU twin over awkward sizes, with ties
// (the canonical order breaks them by id), -inf logits and n larger than the row, and a scored
// token per row. Log-probs
// within fp32 tolerance, top ids exact. Skips without a GPU.
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/log_softmax_topn.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;

TEST(LogSoftmaxTopNGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int rows : {1, 3, 17}) {
    for (int cols : {1, 7, 513, 151936}) {
      for (int top_n : {0, 1, 5, 20}) {
        for (bool with_out : {true, false}) {
          if (top_n == 0 && !with_out) continue;
          std::vector<float> logits(static_cast<size_t>(rows) * cols);
          // Coarse values give ties; a few -inf entries (masked tokens).
          for (float& v : logits) v = std::round(normal(rng) * 4.0f) / 4.0f;
          for (size_t i = 0; i < logits.size(); i += 97) {
            if (i % cols != 0) logits[i] = -std::numeric_limits<float>::infinity();
          }
          std::vector<float> out(with_out ? logits.size() : 0), top_lp(rows * top_n);
          std::vector<int32_t> top_ids(rows * top_n);
          // One scored token per row (prompt scoring), some of them masked.
          std::vector<int32_t> targets(rows);
          for (int r = 0; r < rows; ++r) targets[r] = static_cast<int32_t>((r * 7919) % cols);
          std::vector<float> target_lp(rows);
          kernels::LogSoftmaxTopNCpu({.logits = logits.data(),
                                      .out = with_out ? out.data() : nullptr,
                                      .top_ids = top_ids.data(),
                                      .top_logprobs = top_lp.data(),
                                      .rows = rows,
                                      .cols = cols,
                                      .top_n = top_n,
                                      .targets = targets.data(),
                                      .target_logprobs = target_lp.data()});
          DeviceArray<float> dlogits(logits), dout(out.size()), dtop_lp(top_lp.size());
          DeviceArray<int32_t> dtop_ids(top_ids.size()), dtargets(targets);
          DeviceArray<float> dtarget_lp(target_lp.size());
          ASSERT_EQ(kernels::LogSoftmaxTopNCuda({.logits = dlogits.get(),
                                                 .out = with_out ? dout.get() : nullptr,
                                                 .top_ids = dtop_ids.get(),
                                                 .top_logprobs = dtop_lp.get(),
                                                 .rows = rows,
                                                 .cols = cols,
                                                 .top_n = top_n,
                                                 .targets = dtargets.get(),
                                                 .target_logprobs = dtarget_lp.get()},
                                                nullptr),
                    cudaSuccess);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const std::string what = "rows " + std::to_string(rows) + " cols " +
                                   std::to_string(cols) + " top_n " + std::to_string(top_n);
          const testing::Tolerance tol{.atol = 1e-5, .rtol = 1e-6};
          if (with_out) {
            EXPECT_TRUE(testing::AllClose(dout.ToHost(), out, tol, what + " out"));
          }
          EXPECT_TRUE(testing::AllClose(dtop_lp.ToHost(), top_lp, tol, what + " top logprobs"));
          EXPECT_EQ(dtop_ids.ToHost(), top_ids) << what;
          EXPECT_TRUE(testing::AllClose(dtarget_lp.ToHost(), target_lp, tol, what + " targets"));
        }
      }
    }
  }
}

}  // namespace
}  // namespace rami
