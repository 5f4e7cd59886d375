// BiasAddCpu: one pass over the rows.
#include "kernels/bias_add.h"

#include <cstdint>

namespace rami::kernels {

void BiasAddCpu(const BiasAddParams& p) {
  for (int r = 0; r < p.rows; ++r) {
    float* y = p.y + static_cast<int64_t>(r) * p.cols;
    for (int c = 0; c < p.cols; ++c) y[c] += p.bias[c];
  }
}

}  // namespace rami::kernels
