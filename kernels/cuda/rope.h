// Device params of strided RoPE: rotates a `dim`-wide block at `offset` inside each of `heads`
// blocks per token, anywhere in a wider row (MLA's rope part of q heads and of the latent row).
// Semantics and CPU twin: kernels/rope.h (RopeCpu on the gathered blocks).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::kernels {

// Element (t, h, offset + j), j < dim, lives at x[t·token_stride + h·head_stride + offset + j].
struct RopeCudaParams {
  void* x = nullptr;                   // rotated in place, `dtype`
  const int32_t* positions = nullptr;  // [num_tokens]
  const float* inv_freq = nullptr;     // [dim / 2] fp32 (device)
  int num_tokens = 0;
  int heads = 1;                 // rotated blocks per token
  int64_t token_stride = 0;      // elements between tokens
  int64_t head_stride = 0;       // elements between a token's heads
  int offset = 0;                // first rotated element of a head
  int dim = 0;                   // rotated elements, even
  float attention_scale = 1.0f;  // as RopeCpu's (YaRN mscale), multiplies the result
  bool interleaved = false;      // DeepSeek's rope_interleave (pairs 2i, 2i+1) vs rotate-half
  DeviceDType dtype = DeviceDType::kBF16;
};

// cudaErrorInvalidValue for an odd or non-positive dim, negative counts, offset < 0 or null
// pointers (with work to do); nothing to do for num_tokens == 0 or heads == 0.
cudaError_t RopeCuda(const RopeCudaParams& p, cudaStream_t stream);

}  // namespace rami::kernels
