// Token sampling on the GPU: kernels/sampling.h's params and semantics (greedy, temperature,
// top-k, top-p, min-p, the Philox draw keyed by (seed, token index), raw log-probs and top-n),
// device pointers throughout. A row that draws with a top-k of at most kSampleSelectMax
// selects its k first tokens in canonical order in the kernel, without sorting the row; other
// drawing rows need the whole canonical order: the launch sorts their passes of
// kSampleSortRowsPerPass rows (a stable radix sort, ties by id) through a workspace the caller
// allocates once.
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
// The largest top-k selected without a sort (Qwen3's generation config asks for 20).
inline constexpr int kSampleSelectMax = 1024;

// Whether a row reads the whole sorted canonical order: it draws (temperature ≠ 0, top_k ≠ 1)
// with no top-k, or one above kSampleSelectMax.
RAMI_HOST_DEVICE inline bool SampleRowNeedsSort(float temperature, int32_t top_k) {
  return temperature != 0.0f && top_k != 1 && (top_k <= 0 || top_k > kSampleSelectMax);
}

struct SampleWorkspace {
  void* data = nullptr;  // device memory of SampleWorkspaceBytes(rows, vocab) bytes
  size_t bytes = 0;
  // Whether some row needs the sort (SampleRowNeedsSort), known to the host from the plan;
  // false skips it and needs no workspace.
  bool any_sorted = true;
};

size_t SampleWorkspaceBytes(int rows, int vocab);

cudaError_t SampleCuda(const SampleParams& p, const SampleWorkspace& workspace,
                       cudaStream_t stream);

}  // namespace rami::kernels
