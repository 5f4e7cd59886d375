// Device params of absorbed MLA decode attention (DeepSeek) over the DMS-layout paged cache:
// the CUDA twin of MlaAttentionCpu (kernels/mla_attention.h). The cache is K-only (v_pool
// unused), one stream per (sequence, layer) shared by every query head, rows of
// head_dim = latent_dim + rope_dim values [normed latent | rotated rope key]; the row's latent
// part is the value. Same visibility rule as attention.h (kept list, then window positions
// ≤ pos that are within W or unflagged); fp32 scores and softmax.
//
// One block per (query token, head block of ≤ kMlaHeadsPerBlock heads, split): the block
// stages 32 cache rows at a time in shared memory (fp32) and uses each for all its heads, so
// a row is read once per head block rather than once per head. Split-KV with a merge kernel as
// DecodeAttentionCuda, same split rule (DecodeSplitKeys: explicit keys_per_split, or 0 for
// balanced per-query splits) and same padding rule: a token whose token_stream is negative
// (−1, a CUDA graph's padding) reads no table entry and no key, and its output rows are zeros
// (lse −inf in every split). Any head_dim and latent_dim ≤ head_dim (V3: 512 + 64; the goldens:
// 32 + 8); rows whose byte length is a multiple of 16 load 16 bytes per lane.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/kv_cache_view.h"

namespace rami::kernels {

inline constexpr int kMlaHeadsPerBlock = 16;

struct MlaDecodeAttentionParams {
  KvCacheCudaView cache;    // K-only; head_dim = latent_dim + rope_dim
  const void* q = nullptr;  // [num_tokens, num_heads, head_dim] cache dtype
  void* out = nullptr;      // [num_tokens, num_heads, latent_dim] cache dtype
  // [num_tokens] the (sequence, layer) stream; < 0: a padding token (zero output)
  const int32_t* token_stream = nullptr;
  const int32_t* positions = nullptr;  // [num_tokens]; a padding token's entry is ignored
  int num_tokens = 0;
  int num_heads = 0;
  int latent_dim = 0;  // kv_lora_rank
  float scale = 1.0f;  // qk_head_dim^-0.5 · mscale²
  // Split-KV (DecodeSplitKeys). num_splits 1: no workspace, the block writes `out`.
  int num_splits = 1;
  // With num_splits > 1: > 0, visible keys per split (PlanMlaDecodeSplits); 0, balanced: each
  // query cuts its own visible keys into num_splits near-equal 64-key-aligned ranges.
  int keys_per_split = 0;
  float* partial_out = nullptr;  // [num_tokens, num_heads, num_splits, latent_dim] fp32
  float* partial_lse = nullptr;  // [num_tokens, num_heads, num_splits] fp32
};

// Head blocks per token: the grid's y extent.
inline int MlaHeadBlocks(int num_heads) {
  return (num_heads + kMlaHeadsPerBlock - 1) / kMlaHeadsPerBlock;
}

// PlanDecodeSplits with the MLA grid's blocks per token (head blocks instead of KV heads).
inline DecodeSplitPlan PlanMlaDecodeSplits(int64_t max_visible_keys, int num_tokens, int num_heads,
                                           int num_sms) {
  return PlanDecodeSplits(max_visible_keys, num_tokens, MlaHeadBlocks(num_heads), num_sms);
}

// cudaErrorInvalidValue for bad shapes or a row too wide for the device's shared memory.
cudaError_t MlaDecodeAttentionCuda(const MlaDecodeAttentionParams& p, cudaStream_t stream);

}  // namespace rami::kernels
