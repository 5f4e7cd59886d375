// Token sampling on the GPU: kernels/sampling.h's params and semantics (greedy, temperature,
// top-k, top-p, min-p, the Philox draw keyed by (seed, token index), raw log-probs and top-n),
// device pointers throughout. Rows that draw need the canonical order of their logits: the
// launch sorts those rows (a stable radix sort, ties by id) in passes of
// kSampleSortRowsPerPass rows through a workspace the caller allocates once.
//
// Equality with SampleCpu: the same canonical order, weights and Philox uniform; only the
// order of the double-precision sums differs (a tree instead of a left fold), so a token can
// differ only when u·mass or top_p·mass falls within ~1e-16 relative of a cumulative boundary.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/sampling.h"

namespace rami::kernels {

inline constexpr int kSampleSortRowsPerPass = 32;

struct SampleWorkspace {
  void* data = nullptr;  // device memory of SampleWorkspaceBytes(rows, vocab) bytes
  size_t bytes = 0;
  // Whether any row draws (temperature ≠ 0 and top_k ≠ 1), known to the host from the plan;
  // false skips the sort and needs no workspace.
  bool any_random = true;
};

size_t SampleWorkspaceBytes(int rows, int vocab);

cudaError_t SampleCuda(const SampleParams& p, const SampleWorkspace& workspace,
                       cudaStream_t stream);

}  // namespace rami::kernels
