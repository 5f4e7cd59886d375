// CPU twin of log-softmax; the normaliser is summed in double.
#include "kernels/log_softmax.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace rami::kernels {

void LogSoftmaxCpu(const LogSoftmaxParams& p) {
  for (int r = 0; r < p.rows; ++r) {
    const float* x = p.logits + static_cast<int64_t>(r) * p.cols;
    float* out = p.out + static_cast<int64_t>(r) * p.cols;
    const float max = *std::max_element(x, x + p.cols);
    double sum = 0.0;
    for (int c = 0; c < p.cols; ++c) sum += std::exp(static_cast<double>(x[c]) - max);
    const float log_z = max + static_cast<float>(std::log(sum));
    for (int c = 0; c < p.cols; ++c) out[c] = x[c] - log_z;
  }
}

}  // namespace rami::kernels
