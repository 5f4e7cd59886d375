// Bias add over rows: y[r, c] += bias[c] (Qwen2's q/k/v biases, o_proj's, the DMS adapter's).
// The CPU linear layer (linear.h) adds its bias through BiasAddCpu after the GEMM, so this is
// the exact twin of BiasAddCuda (kernels/cuda/elementwise.h) on the CUDA backend, which adds
// biases after its cuBLASLt GEMMs.
#pragma once

namespace rami::kernels {

struct BiasAddParams {
  float* y = nullptr;           // [rows, cols], updated in place
  const float* bias = nullptr;  // [cols]
  int rows = 0;
  int cols = 0;
};

void BiasAddCpu(const BiasAddParams& p);

}  // namespace rami::kernels
