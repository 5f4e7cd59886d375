// KV cache updates on the GPU: the per-layer write of new tokens into their window slots (one
// warp per (token, KV head); padding tokens' warps return at once) and the per-step slot copies
// (one block per op). Data moves in 16-byte words: a slot is head_dim · 2 or 4 bytes, a
// multiple of 16 for head_dim 64 and 128.
#include <cuda_runtime.h>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/kv_update.h"

namespace rami::kernels {
namespace {

constexpr int kWarps = 4;

// Slot `slot` of the page list starting at page_table[list_start], as 16-byte words.
__device__ __forceinline__ uint4* SlotWords(const KvCacheCudaView& c, void* pool,
                                            int32_t list_start, int32_t slot, int slot_words) {
  const int32_t page = c.page_table[list_start + slot / c.page_size];
  return static_cast<uint4*>(pool) +
         (static_cast<int64_t>(page) * c.page_size + slot % c.page_size) * slot_words;
}

__global__ void KvWriteKernel(KvWriteCudaParams p, int slot_words) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (item >= static_cast<int64_t>(p.num_tokens) * p.num_kv_heads) return;
  const int lane = threadIdx.x % 32;
  const int t = static_cast<int>(item / p.num_kv_heads),
            h = static_cast<int>(item % p.num_kv_heads);
  const KvCacheCudaView& c = p.cache;
  // A padding token writes nothing; checked before adding h, which would make −1 a real stream.
  const int32_t stream0 = p.token_stream[t];
  if (stream0 < 0) return;
  const int32_t s = stream0 + h;
  const int32_t pos = p.positions[t];
  const int32_t slot = pos - c.window_base[s];
  uint4* k_dst = SlotWords(c, c.k_pool, c.window_page_start[s], slot, slot_words);
  const uint4* k_src = static_cast<const uint4*>(p.k) + item * slot_words;
  for (int i = lane; i < slot_words; i += 32) k_dst[i] = k_src[i];
  if (p.v != nullptr) {  // K-only caches (MLA's latent rows) have no V
    uint4* v_dst = SlotWords(c, c.v_pool, c.window_page_start[s], slot, slot_words);
    const uint4* v_src = static_cast<const uint4*>(p.v) + item * slot_words;
    for (int i = lane; i < slot_words; i += 32) v_dst[i] = v_src[i];
  }
  // α of token t decides the fate of token t − 1 (the α of token 0 is discarded). slot ≥ 1
  // whenever pos > 0: the window keeps W + 1 ≥ 1 tokens before the newest.
  if (lane == 0 && p.alpha != nullptr && c.flags != nullptr && pos > 0) {
    c.flags[c.flag_start[s] + static_cast<int64_t>(slot - 1) * c.flag_stride] = p.alpha[item];
  }
}

__global__ void KvCopyKernel(KvCopyParams p, int slot_words) {
  const KvCopyOp op = p.ops[blockIdx.x];
  const int64_t src = (static_cast<int64_t>(op.src_page) * p.page_size + op.src_slot) * slot_words;
  const int64_t dst = (static_cast<int64_t>(op.dst_page) * p.page_size + op.dst_slot) * slot_words;
  const int words = op.num_slots * slot_words;
  uint4* k = static_cast<uint4*>(p.k_pool);
  uint4* v = static_cast<uint4*>(p.v_pool);
  for (int i = threadIdx.x; i < words; i += blockDim.x) {
    k[dst + i] = k[src + i];
    if (v != nullptr) v[dst + i] = v[src + i];
  }
}

}  // namespace

cudaError_t KvWriteCuda(const KvWriteCudaParams& p, cudaStream_t stream) {
  const int64_t items = static_cast<int64_t>(p.num_tokens) * p.num_kv_heads;
  if (items == 0) return cudaSuccess;
  const int slot_bytes = p.cache.head_dim * DeviceDTypeSize(p.cache.dtype);
  if (slot_bytes % 16 != 0 || p.k == nullptr || (p.v != nullptr && p.cache.v_pool == nullptr)) {
    return cudaErrorInvalidValue;
  }
  KvWriteKernel<<<static_cast<int>((items + kWarps - 1) / kWarps), kWarps * 32, 0, stream>>>(
      p, slot_bytes / 16);
  return cudaGetLastError();
}

cudaError_t KvCopyCuda(const KvCopyParams& p, cudaStream_t stream) {
  if (p.num_ops == 0) return cudaSuccess;
  const int slot_bytes = p.head_dim * DeviceDTypeSize(p.dtype);
  if (slot_bytes % 16 != 0) return cudaErrorInvalidValue;
  KvCopyKernel<<<p.num_ops, 128, 0, stream>>>(p, slot_bytes / 16);
  return cudaGetLastError();
}

}  // namespace rami::kernels
