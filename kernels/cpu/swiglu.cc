// CPU twin of SwiGLU.
#include "kernels/swiglu.h"

#include <cmath>
#include <cstdint>

namespace rami::kernels {

void SwigluCpu(const SwigluParams& p) {
  for (int r = 0; r < p.rows; ++r) {
    const float* gate = p.gate_up + static_cast<int64_t>(r) * 2 * p.cols;
    const float* up = gate + p.cols;
    float* out = p.out + static_cast<int64_t>(r) * p.cols;
    for (int c = 0; c < p.cols; ++c) {
      const float g = gate[c];
      out[c] = g / (1.0f + std::exp(-g)) * up[c];
    }
  }
}

}  // namespace rami::kernels
