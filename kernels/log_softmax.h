// Row-wise log-softmax over the vocabulary: out = x − max − log Σ exp(x − max).
#pragma once

namespace rami::kernels {

struct LogSoftmaxParams {
  const float* logits = nullptr;  // [rows, cols]
  float* out = nullptr;           // [rows, cols]; may alias logits
  int rows = 0;
  int cols = 0;
};

void LogSoftmaxCpu(const LogSoftmaxParams& p);

}  // namespace rami::kernels
