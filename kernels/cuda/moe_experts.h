// GPU MoE experts (host orchestration): given each token's routed experts and weights (the
// output of MoeRoutingCuda, copied to the host — the per-expert GEMM sizes are host launch
// parameters), permute the tokens' rows into expert order, run every routed expert's
// gate_up GEMM, SwiGLU and down GEMM through CublasLtGemm, and combine the outputs per token:
//   out[t] = Σ_j weights[t, j] · down_e · SwiGLU(gate_up_e · x[t]),  e = expert_ids[t, j]
// the math of worker/cpu/moe.cc's routed experts (shared experts are a dense MLP, run by the
// caller). A token's slots are summed in ascending expert order, as the CPU does.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/gemm.h"

namespace rami::kernels {

struct MoeExpertsCudaParams {
  const void* x = nullptr;               // [num_tokens, hidden] dtype (device)
  void* out = nullptr;                   // [num_tokens, hidden] dtype (device), overwritten
  const int32_t* expert_ids = nullptr;   // [num_tokens, top_k] host
  const float* weights = nullptr;        // [num_tokens, top_k] host
  const void* const* gate_up = nullptr;  // [num_experts] host array of device [2·inter, hidden]
  const void* const* down = nullptr;     // [num_experts] host array of device [hidden, inter]
  int num_tokens = 0;
  int top_k = 0;
  int num_experts = 0;
  int hidden = 0;
  int inter = 0;  // this rank's slice of moe_intermediate_size
  GemmDtype dtype = GemmDtype::kBf16;
  void* workspace = nullptr;  // device, MoeExpertsWorkspaceBytes(…) bytes
  size_t workspace_bytes = 0;
};

// Device workspace of one call: the permuted rows, the GEMM intermediates and the index arrays.
size_t MoeExpertsWorkspaceBytes(int num_tokens, int top_k, int hidden, int inter, GemmDtype dtype);

// Enqueues the experts on `stream` (the index arrays are uploaded with cudaMemcpyAsync from
// pageable memory, so the host arrays may be freed on return). InvalidArgument for bad shapes,
// an out-of-range expert id, a routed expert without weights or a short workspace.
absl::Status RunMoeExpertsCuda(const MoeExpertsCudaParams& p, CublasLtGemm& gemm,
                               cudaStream_t stream);

}  // namespace rami::kernels
