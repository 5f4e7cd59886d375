// Logits rows to fp32 (logits_f32.h): one block-stride pass per output row.
#include <cuda_bf16.h>

#include "worker/cuda/logits_f32.h"

namespace rami::cuda {
namespace {

__device__ float ToFloat(float x) { return x; }
__device__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__global__ void LogitsToF32Kernel(LogitsToF32Params p) {
  const int k = blockIdx.x;
  const int64_t row = p.rows[k];
  const int64_t vocab = static_cast<int64_t>(p.world) * p.vocab_local;
  const T* in = static_cast<const T*>(p.in);
  float* out = p.out + k * vocab;
  for (int64_t v = threadIdx.x; v < vocab; v += blockDim.x) {
    const int64_t rank = v / p.vocab_local;
    out[v] =
        ToFloat(in[(rank * p.rows_per_rank + row) * p.vocab_local + (v - rank * p.vocab_local)]);
  }
}

}  // namespace

cudaError_t LogitsToF32Cuda(const LogitsToF32Params& p, cudaStream_t stream) {
  if (p.num_rows <= 0) return cudaSuccess;
  if (p.in == nullptr || p.rows == nullptr || p.out == nullptr || p.vocab_local <= 0 ||
      p.world <= 0 || p.rows_per_rank <= 0) {
    return cudaErrorInvalidValue;
  }
  constexpr int kThreads = 512;
  switch (p.dtype) {
    case kernels::DeviceDType::kF32:
      LogitsToF32Kernel<float><<<p.num_rows, kThreads, 0, stream>>>(p);
      break;
    case kernels::DeviceDType::kBF16:
      LogitsToF32Kernel<__nv_bfloat16><<<p.num_rows, kThreads, 0, stream>>>(p);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace rami::cuda
