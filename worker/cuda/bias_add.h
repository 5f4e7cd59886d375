// y[r, c] += bias[c] over a [rows, cols] matrix of `dtype` (Qwen2's q/k/v biases, o_proj's):
// the one op of the CUDA forward pass without a kernel of its own in kernels/cuda.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cuda/device_dtype.h"

namespace rami::cuda {

struct BiasAddParams {
  void* y = nullptr;           // [rows, cols] dtype, updated in place
  const void* bias = nullptr;  // [cols] dtype
  int rows = 0;
  int cols = 0;
  kernels::DeviceDType dtype = kernels::DeviceDType::kBF16;
};

cudaError_t BiasAddCuda(const BiasAddParams& p, cudaStream_t stream);

}  // namespace rami::cuda
