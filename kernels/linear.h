// Linear layer y = x · Wᵀ (+ bias), with W in Hugging Face layout [out_features, in_features].
#pragma once

namespace rami::kernels {

struct LinearParams {
  const float* x = nullptr;     // [m, k]
  const float* w = nullptr;     // [n, k]
  const float* bias = nullptr;  // [n] or null
  float* y = nullptr;           // [m, n]
  int m = 0;
  int n = 0;
  int k = 0;
};

// fp32 accumulation; through cblas_sgemm when rami was built with a CPU BLAS.
void LinearCpu(const LinearParams& p);

}  // namespace rami::kernels
