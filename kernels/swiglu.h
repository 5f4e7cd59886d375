// SwiGLU activation of the fused gate/up projection: out = silu(gate) · up.
#pragma once

namespace rami::kernels {

struct SwigluParams {
  const float* gate_up = nullptr;  // [rows, 2 * cols]: gate in [:, :cols], up in [:, cols:]
  float* out = nullptr;            // [rows, cols]
  int rows = 0;
  int cols = 0;
};

void SwigluCpu(const SwigluParams& p);

}  // namespace rami::kernels
