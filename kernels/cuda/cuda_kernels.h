// Entry points of the CUDA kernels. Each takes the same params struct as its CPU twin
// (kernels/<op>.h), with device pointers, and a stream; each returns the launch status.
// Shapes are validated by the caller before the launch (style.md: validate at the op boundary).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/rmsnorm.h"

namespace rami::kernels {

cudaError_t RmsNormCuda(const RmsNormParams& p, cudaStream_t stream);

}  // namespace rami::kernels
