// Device helpers for the canonical token order of kernels/sampling.h (logit descending, ties
// by ascending id), shared by log-softmax + top-n and sampling. Included by .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

namespace rami::kernels::cuda_detail {

// True when (xa, a) comes before (xb, b) in canonical order.
__device__ __forceinline__ bool CanonicalBefore(float xa, int a, float xb, int b) {
  return xa > xb || (xa == xb && a < b);
}

__device__ __forceinline__ void WarpBest(float& x, int& id) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float ox = __shfl_xor_sync(0xffffffffu, x, offset);
    const int oid = __shfl_xor_sync(0xffffffffu, id, offset);
    if (oid >= 0 && (id < 0 || CanonicalBefore(ox, oid, x, id))) x = ox, id = oid;
  }
}

// The canonically first (x, id) over the block (id -1: no thread had a candidate); every
// thread gets it. xs/ids: 32 entries of shared scratch, free again on return.
__device__ __forceinline__ void BlockBest(float& x, int& id, float* xs, int* ids) {
  WarpBest(x, id);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) xs[warp] = x, ids[warp] = id;
  __syncthreads();
  const bool have = lane < static_cast<int>(blockDim.x / 32);
  x = have ? xs[lane] : -INFINITY;
  id = have ? ids[lane] : -1;
  WarpBest(x, id);
  __syncthreads();
}

// Writes the n canonically best tokens of row x[cols] and their log-probs x − log_z (n rounds
// of BlockBest, each over the tokens after the previous pick; -1 / -inf past the row).
__device__ inline void BlockTopN(const float* x, int cols, int n, float log_z, int32_t* top_ids,
                                 float* top_logprobs, float* xs, int* ids) {
  float prev_x = INFINITY;
  int prev_id = -1;  // nothing picked yet: every finite or -inf token is after (+inf, -1)
  for (int j = 0; j < n; ++j) {
    float best_x = -INFINITY;
    int best_id = -1;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      const float v = x[c];
      if (CanonicalBefore(prev_x, prev_id, v, c) &&
          (best_id < 0 || CanonicalBefore(v, c, best_x, best_id))) {
        best_x = v, best_id = c;
      }
    }
    BlockBest(best_x, best_id, xs, ids);
    if (threadIdx.x == 0) {
      top_ids[j] = best_id;
      top_logprobs[j] = best_id >= 0 ? best_x - log_z : -INFINITY;
    }
    prev_x = best_x, prev_id = best_id;
    if (best_id < 0) prev_x = -INFINITY, prev_id = cols;  // row exhausted: nothing after
  }
}

}  // namespace rami::kernels::cuda_detail
