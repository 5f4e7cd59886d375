// RMSNorm, optionally fused with the residual add that precedes it in a decoder layer:
//   if residual: residual += x; y = residual   else: y = x
//   out = weight * y / sqrt(mean(y²) + eps)
// Also serves Qwen3's per-head q/k norm (rows = tokens × heads, cols = head_dim).
#pragma once

namespace rami::kernels {

struct RmsNormParams {
  const float* x = nullptr;       // [rows, cols]
  float* residual = nullptr;      // [rows, cols] or null; updated in place
  const float* weight = nullptr;  // [cols]
  float* out = nullptr;           // [rows, cols]; may alias x
  int rows = 0;
  int cols = 0;
  float eps = 1e-6f;
};

void RmsNormCpu(const RmsNormParams& p);

}  // namespace rami::kernels
