// Row-wise log-softmax fused with the top-n log-probs: the n best tokens of each row in the
// canonical order of kernels/sampling.h (logit descending, ties by ascending id) and their
// log-probs; optionally the log-prob of one given token per row (prompt scoring: the token that
// follows the row's position). The CPU twin is LogSoftmaxCpu plus a partial sort; the CUDA kernel
// (LogSoftmaxTopNCuda, kernels/cuda/cuda_kernels.h) takes the same params with device pointers.
#pragma once

#include <cstdint>

namespace rami::kernels {

struct LogSoftmaxTopNParams {
  const float* logits = nullptr;  // [rows, cols] fp32, no NaN/+Inf, ≥ 1 finite per row
  float* out = nullptr;           // [rows, cols] log-probs, or null (only the top n wanted)
  int32_t* top_ids = nullptr;     // [rows, top_n]; -1 past cols
  float* top_logprobs = nullptr;  // [rows, top_n]; -inf past cols
  int rows = 0;
  int cols = 0;
  int top_n = 0;                     // 0 … kMaxLogprobs (kernels/sampling.h)
  const int32_t* targets = nullptr;  // [rows] token ids in [0, cols), or null
  float* target_logprobs = nullptr;  // [rows] log-prob of targets[r] (with targets)
};

void LogSoftmaxTopNCpu(const LogSoftmaxTopNParams& p);

}  // namespace rami::kernels
