// LogitsGatherCuda (logits_gather.h): one block-stride pass per output row.
#include <cuda_runtime.h>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/logits_gather.h"

namespace rami::kernels {
namespace {

using cuda_detail::ToFloat;

template <typename T>
__global__ void LogitsGatherKernel(LogitsGatherCudaParams p) {
  const int k = blockIdx.x;
  const int64_t row = p.rows[k];
  const T* in = static_cast<const T*>(p.in);
  float* out = p.out + static_cast<int64_t>(k) * p.vocab;
  for (int64_t v = threadIdx.x; v < p.vocab; v += blockDim.x) {
    const int64_t rank = v / p.vocab_local;
    out[v] =
        ToFloat(in[(rank * p.rows_per_rank + row) * p.vocab_local + (v - rank * p.vocab_local)]);
  }
}

}  // namespace

cudaError_t LogitsGatherCuda(const LogitsGatherCudaParams& p, cudaStream_t stream) {
  if (p.num_rows <= 0) return cudaSuccess;
  if (p.in == nullptr || p.rows == nullptr || p.out == nullptr || p.vocab_local <= 0 ||
      p.world <= 0 || p.rows_per_rank <= 0 || p.vocab <= 0 ||
      p.vocab > static_cast<int64_t>(p.world) * p.vocab_local) {
    return cudaErrorInvalidValue;
  }
  constexpr int kThreads = 512;
  return RAMI_DISPATCH_DTYPE(p.dtype, T, [&] {
    LogitsGatherKernel<T><<<p.num_rows, kThreads, 0, stream>>>(p);
    return cudaGetLastError();
  });
}

}  // namespace rami::kernels
