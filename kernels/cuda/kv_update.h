// Device params of the KV cache updates (dms.md §4). The host decides every page (allocation,
// release, which token is promoted); these kernels only move data:
//  * KvWriteCuda (per layer, before attention): token t's K/V into its window slot and, with
//    alpha, α_t as the flag of position t − 1 (the one-token shift) — kernels/paged_attention.h
//    KvWriteCpu is the twin. A token whose token_stream is negative (−1) is a padding token
//    of a CUDA graph captured for a larger batch bucket: it writes nothing (no K/V, no flag)
//    and reads no table entry; its k/v/alpha rows are ignored.
//  * KvCopyCuda (once per step, all layers): a host-built list of slot copies — promotions of
//    tokens that left the window with flag 0 into their kept slot (KvStream's CommitAppend),
//    and a fork's private copies of partial tail pages (ForkStream). Eviction moves nothing:
//    a dropped token's page is released on the host. Ops of one launch must be independent
//    (no op reads a slot another writes): promotions and the forks after them are two launches.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/kv_cache_view.h"
#include "kernels/kv_copy.h"

namespace rami::kernels {

struct KvWriteCudaParams {
  KvCacheCudaView cache;
  const void* k = nullptr;         // [num_tokens, num_kv_heads, head_dim] cache dtype
  const void* v = nullptr;         // same, or null: a K-only cache (MLA), V not written
  const uint8_t* alpha = nullptr;  // [num_tokens, num_kv_heads] 1 = evict, or null
  // [num_tokens] stream of KV head 0; < 0: a padding token (skipped)
  const int32_t* token_stream = nullptr;
  const int32_t* positions = nullptr;  // [num_tokens]; a padding token's is not read
  int num_tokens = 0;
  int num_kv_heads = 0;
};

cudaError_t KvWriteCuda(const KvWriteCudaParams& p, cudaStream_t stream);
cudaError_t KvCopyCuda(const KvCopyParams& p, cudaStream_t stream);

}  // namespace rami::kernels
