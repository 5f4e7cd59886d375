// Device params of the row-wise CUDA ops whose CPU twins take fp32 host pointers: embedding
// (vocab-parallel), RMSNorm fused with the residual add, SwiGLU and the bias add. Same semantics
// as kernels/embedding.h, kernels/rmsnorm.h, kernels/swiglu.h and kernels/bias_add.h, with
// device pointers of `dtype` elements (fp32 arithmetic inside).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::kernels {

struct EmbeddingCudaParams {
  const int32_t* tokens = nullptr;  // [num_tokens]
  const void* table = nullptr;      // [vocab_local, hidden] dtype
  void* out = nullptr;              // [num_tokens, hidden] dtype; zero rows for other ranks' ids
  int num_tokens = 0;
  int hidden = 0;
  int vocab_start = 0;
  int vocab_local = 0;
  DeviceDType dtype = DeviceDType::kBF16;
};

// if residual: residual += x (stored in dtype, as transformers keeps the residual stream);
// out = weight · y / sqrt(mean(y²) + eps) with y the (updated) residual, else y = x.
// Row strides let a norm cover the first `cols` columns of wider rows in place (MLA's latent:
// rows of lora + rope, the first lora normed, x = out, x_stride = out_stride = lora + rope).
// Strides are only for the residual-free form: with a residual, any stride other than 0 or
// cols is cudaErrorInvalidValue (the residual stream stays dense).
struct RmsNormCudaParams {
  const void* x = nullptr;       // [rows, x_stride] dtype, the first cols of each row read
  void* residual = nullptr;      // [rows, cols] dtype or null; updated in place
  const void* weight = nullptr;  // [cols] dtype
  void* out = nullptr;           // [rows, out_stride] dtype; may alias x (same stride then)
  int rows = 0;
  int cols = 0;
  float eps = 1e-6f;
  DeviceDType dtype = DeviceDType::kBF16;
  int x_stride = 0;    // elements between rows of x (0: cols)
  int out_stride = 0;  // elements between rows of out (0: cols)
};

struct SwigluCudaParams {
  const void* gate_up = nullptr;  // [rows, 2 * cols] dtype: gate in [:, :cols], up in [:, cols:]
  void* out = nullptr;            // [rows, cols] dtype
  int rows = 0;
  int cols = 0;
  DeviceDType dtype = DeviceDType::kBF16;
};

struct BiasAddCudaParams {
  void* y = nullptr;           // [rows, cols] dtype, updated in place
  const void* bias = nullptr;  // [cols] dtype
  int rows = 0;
  int cols = 0;
  DeviceDType dtype = DeviceDType::kBF16;
};

cudaError_t EmbeddingCuda(const EmbeddingCudaParams& p, cudaStream_t stream);
cudaError_t RmsNormTypedCuda(const RmsNormCudaParams& p, cudaStream_t stream);
cudaError_t SwigluCuda(const SwigluCudaParams& p, cudaStream_t stream);
cudaError_t BiasAddCuda(const BiasAddCudaParams& p, cudaStream_t stream);

}  // namespace rami::kernels
