// CPU twin of the (residual-fused) RMSNorm. Sum of squares in double: this is the reference.
#include "kernels/rmsnorm.h"

#include <cmath>
#include <cstdint>

namespace rami::kernels {

void RmsNormCpu(const RmsNormParams& p) {
  for (int r = 0; r < p.rows; ++r) {
    const int64_t base = static_cast<int64_t>(r) * p.cols;
    const float* y = p.x + base;
    if (p.residual != nullptr) {
      float* res = p.residual + base;
      for (int c = 0; c < p.cols; ++c) res[c] += y[c];
      y = res;
    }
    double sum_sq = 0.0;
    for (int c = 0; c < p.cols; ++c) sum_sq += static_cast<double>(y[c]) * y[c];
    const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / p.cols + p.eps));
    float* out = p.out + base;
    for (int c = 0; c < p.cols; ++c) out[c] = p.weight[c] * (y[c] * inv_rms);
  }
}

}  // namespace rami::kernels
