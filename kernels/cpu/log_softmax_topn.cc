// CPU twin of log-softmax + top-n: LogSoftmaxCpu's normaliser (double), then a partial sort
// of the ids in canonical order.
#include "kernels/log_softmax_topn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace rami::kernels {

void LogSoftmaxTopNCpu(const LogSoftmaxTopNParams& p) {
  std::vector<int32_t> ids(p.cols);
  for (int r = 0; r < p.rows; ++r) {
    const float* x = p.logits + static_cast<int64_t>(r) * p.cols;
    const float max = *std::max_element(x, x + p.cols);
    double sum = 0.0;
    for (int c = 0; c < p.cols; ++c) sum += std::exp(static_cast<double>(x[c]) - max);
    const float log_z = max + static_cast<float>(std::log(sum));
    if (p.out != nullptr) {
      float* out = p.out + static_cast<int64_t>(r) * p.cols;
      for (int c = 0; c < p.cols; ++c) out[c] = x[c] - log_z;
    }
    if (p.targets != nullptr) p.target_logprobs[r] = x[p.targets[r]] - log_z;
    if (p.top_n == 0) continue;
    const int n = std::min(p.top_n, p.cols);
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(),
                      [x](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
    for (int j = 0; j < p.top_n; ++j) {
      p.top_ids[static_cast<int64_t>(r) * p.top_n + j] = j < n ? ids[j] : -1;
      p.top_logprobs[static_cast<int64_t>(r) * p.top_n + j] =
          j < n ? x[ids[j]] - log_z : -std::numeric_limits<float>::infinity();
    }
  }
}

}  // namespace rami::kernels
