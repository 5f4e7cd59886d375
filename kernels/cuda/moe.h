// Device side of DeepSeek mixture-of-experts on the GPU: routing (the CUDA twin of
// MoeRoutingCpu, taking the same params with device pointers), and the row permutation
// kernels around the per-expert GEMMs: gather the tokens' rows into expert order, and combine
// the experts' outputs back per token with the routing weights. The GEMM orchestration is
// host code (kernels/cuda/moe_experts.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_dtype.h"
#include "kernels/moe_routing.h"

namespace rami::kernels {

// MoeRoutingCpu's results with device pointers: the same experts in the same order (ties to
// the lower index), weights up to expf's last-bit differences. One warp per token.
// Supported: num_experts ≤ kMoeMaxExperts, num_groups ≤ 32 dividing num_experts, top_k ≤
// num_experts, topk_groups ≤ num_groups, groups of ≥ 2 experts for kSigmoidNoauxTc.
inline constexpr int kMoeMaxExperts = 1024;
cudaError_t MoeRoutingCuda(const MoeRoutingParams& p, cudaStream_t stream);

// dst[r] = src[src_row[r]] for r < num_rows: a token's row copied into expert order.
struct MoeGatherCudaParams {
  const void* src = nullptr;         // [num_tokens, cols] dtype
  void* dst = nullptr;               // [num_rows, cols] dtype
  const int32_t* src_row = nullptr;  // [num_rows] token of each expert-ordered row
  int num_rows = 0;
  int cols = 0;
  DeviceDType dtype = DeviceDType::kBF16;
};

// out[t] = Σ_j weights[t, j] · expert_out[slot_row[t, j]] (fp32 sum in j order, from 0), for
// t < num_tokens; deterministic, no atomics.
struct MoeCombineCudaParams {
  const void* expert_out = nullptr;   // [num_rows, cols] dtype, expert order
  const int32_t* slot_row = nullptr;  // [num_tokens, top_k] row of each (token, slot)
  const float* weights = nullptr;     // [num_tokens, top_k] fp32, in slot_row's order
  void* out = nullptr;                // [num_tokens, cols] dtype (overwritten)
  int num_tokens = 0;
  int top_k = 0;
  int cols = 0;
  DeviceDType dtype = DeviceDType::kBF16;
};

cudaError_t MoeGatherCuda(const MoeGatherCudaParams& p, cudaStream_t stream);
cudaError_t MoeCombineCuda(const MoeCombineCudaParams& p, cudaStream_t stream);

}  // namespace rami::kernels
