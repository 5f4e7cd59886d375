// Vocab-parallel embedding lookup on the GPU: one block per token copies its row (16-byte
// vectors when the row allows it) or writes zeros when another rank owns the id.
#include <cuda_runtime.h>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/elementwise.h"

namespace rami::kernels {
namespace {

constexpr int kThreads = 256;

// Row bytes are copied as uint4 when both the row size and the base pointers are 16-byte
// multiples (the common case: hidden · 2 bytes, cudaMalloc alignment); bytes otherwise.
template <typename Word>
__global__ void EmbeddingKernel(EmbeddingCudaParams p, int row_words) {
  const int t = blockIdx.x;
  const int local = p.tokens[t] - p.vocab_start;
  Word* out = static_cast<Word*>(p.out) + static_cast<int64_t>(t) * row_words;
  if (local < 0 || local >= p.vocab_local) {  // another rank owns this token
    for (int i = threadIdx.x; i < row_words; i += blockDim.x) out[i] = Word{};
    return;
  }
  const Word* row = static_cast<const Word*>(p.table) + static_cast<int64_t>(local) * row_words;
  for (int i = threadIdx.x; i < row_words; i += blockDim.x) out[i] = row[i];
}

}  // namespace

cudaError_t EmbeddingCuda(const EmbeddingCudaParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  const int64_t row_bytes = static_cast<int64_t>(p.hidden) * DeviceDTypeSize(p.dtype);
  const bool aligned = row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(p.table) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(p.out) % 16 == 0;
  if (aligned) {
    EmbeddingKernel<uint4><<<p.num_tokens, kThreads, 0, stream>>>(p, row_bytes / 16);
  } else {
    EmbeddingKernel<uint8_t><<<p.num_tokens, kThreads, 0, stream>>>(p, row_bytes);
  }
  return cudaGetLastError();
}

}  // namespace rami::kernels
