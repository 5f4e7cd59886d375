// Decode attention over the DMS cache on the GPU (semantics in attention.h). One block per
// (query token, KV head, split) of kWarps warps. A warp is cut into sub-groups of L lanes; a
// sub-group reads one KV slot per iteration, each lane 16 bytes (E elements) of K and V, so a
// slot is read once for all G query heads and the dot products need log2(L) shuffles per head.
// Every sub-group keeps its own online-softmax state (m, l, acc) for the G heads; the block
// merges them at the end, and a merge kernel combines splits. A padding token's blocks see an
// empty key range, so they take the no-key path (zeros, lse −inf) without a special case.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/visible_keys.cuh"

namespace rami::kernels {
namespace {

using cuda_detail::FromFloat;
using cuda_detail::LoadVec16;
using cuda_detail::ToFloat;

constexpr int kWarps = 4;

template <typename T, int D>
struct DecodeShape {
  static constexpr int kE = 16 / sizeof(T);  // elements per lane per slot
  static constexpr int kL = D / kE;          // lanes per slot (8, 16 or 32)
  static constexpr int kSubs = 32 / kL;      // slots per warp per iteration
  static constexpr int kSlots = kWarps * kSubs;
};

// kMaxG bounds the group size G: q and the accumulators take 2·kMaxG·E registers per lane,
// so groups ≤ 4 (Qwen3-8B) get a kMaxG = 4 instantiation with twice the occupancy of 8.
template <typename T, int D, int kMaxG>
__global__ void __launch_bounds__(kWarps * 32) DecodeAttentionKernel(DecodeAttentionParams p) {
  using Shape = DecodeShape<T, D>;
  constexpr int E = Shape::kE, L = Shape::kL, kSlots = Shape::kSlots;
  // Per-slot states for the final merge (≤ 32 KiB: kSlots · G · D fp32).
  __shared__ float sm_m[kSlots][kMaxG];
  __shared__ float sm_l[kSlots][kMaxG];
  __shared__ float sm_acc[kSlots][kMaxG][D];

  const int split = blockIdx.x, kh = blockIdx.y, t = blockIdx.z;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int lane = threadIdx.x % 32;
  const int slot_id = threadIdx.x / L;  // = warp · kSubs + sub-group
  const int sl = lane % L;              // lane within the sub-group: channels [sl·E, sl·E + E)
  const KvCacheCudaView& c = p.cache;
  // A padding token (stream < 0) keeps a negative stream for every KV head (adding kh first
  // would turn −1 into a real stream): it sees no key and writes zeros / an lse of −inf.
  const int32_t stream0 = p.token_stream[t];
  const int32_t s = stream0 < 0 ? -1 : stream0 + kh;
  const int32_t pos = p.positions[t];
  const cuda_detail::VisibleKeys keys =
      cuda_detail::MakeVisibleKeys(c, s, pos, split, p.num_splits, p.keys_per_split);
  const int32_t begin = keys.begin, end = keys.end;
  const T* k_pool = static_cast<const T*>(c.k_pool);
  const T* v_pool = static_cast<const T*>(c.v_pool);

  float q[kMaxG][E], m[kMaxG], l[kMaxG], acc[kMaxG][E];
#pragma unroll
  for (int g = 0; g < kMaxG; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) q[g][e] = acc[g][e] = 0.0f;
    if (g < group) {
      LoadVec16(static_cast<const T*>(p.q) +
                    (static_cast<int64_t>(t) * p.num_q_heads + kh * group + g) * D + sl * E,
                q[g]);
    }
  }

  // Where visible key j lives (element offset of this lane's 16 bytes), or invalid when j is
  // past the split or an evicted window token (dms.md §3: outside W and flagged).
  auto locate = [&](int32_t j, int64_t& offset) -> bool {
    const int64_t row = keys.Row(c, j);
    if (row < 0) return false;
    offset = row * D + sl * E;
    return true;
  };
  // Online-softmax update of the G heads with one slot's raw K/V words (zero when invalid:
  // the shuffles still run so that every lane of the sub-group takes part).
  auto accumulate = [&](const uint4& k_word, const uint4& v_word, bool valid) {
    float k[E], v[E];
    LoadVec16(reinterpret_cast<const T*>(&k_word), k);
    LoadVec16(reinterpret_cast<const T*>(&v_word), v);
#pragma unroll
    for (int g = 0; g < kMaxG; ++g) {
      if (g >= group) break;  // uniform: every lane leaves together
      float dot = 0.0f;
#pragma unroll
      for (int e = 0; e < E; ++e) dot += q[g][e] * k[e];
#pragma unroll
      for (int o = L / 2; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      if (valid) {
        const float score = dot * p.scale;
        const float m_new = fmaxf(m[g], score);
        const float corr = expf(m[g] - m_new);  // 0 on the first key (m = -inf)
        const float w = expf(score - m_new);
        l[g] = l[g] * corr + w;
#pragma unroll
        for (int e = 0; e < E; ++e) acc[g][e] = acc[g][e] * corr + w * v[e];
        m[g] = m_new;
      }
    }
  };

  // Two slots per sub-group per iteration, both loaded before either is used, so that each
  // warp keeps four 16-byte loads in flight. The loop bound is uniform over the block, so every
  // lane reaches the shuffles.
  const uint4 zero = make_uint4(0, 0, 0, 0);
  for (int32_t base = begin; base < end; base += 2 * kSlots) {
    int64_t offset0 = 0, offset1 = 0;
    const bool valid0 = locate(base + slot_id, offset0);
    const bool valid1 = locate(base + kSlots + slot_id, offset1);
    const uint4 k0 = valid0 ? __ldg(reinterpret_cast<const uint4*>(k_pool + offset0)) : zero;
    const uint4 v0 = valid0 ? __ldg(reinterpret_cast<const uint4*>(v_pool + offset0)) : zero;
    const uint4 k1 = valid1 ? __ldg(reinterpret_cast<const uint4*>(k_pool + offset1)) : zero;
    const uint4 v1 = valid1 ? __ldg(reinterpret_cast<const uint4*>(v_pool + offset1)) : zero;
    accumulate(k0, v0, valid0);
    accumulate(k1, v1, valid1);
  }

  // Merge the slots' states: every lane of a sub-group holds the same m, l.
#pragma unroll
  for (int g = 0; g < kMaxG; ++g) {
    if (g >= group) break;
    if (sl == 0) {
      sm_m[slot_id][g] = m[g];
      sm_l[slot_id][g] = l[g];
    }
#pragma unroll
    for (int e = 0; e < E; ++e) sm_acc[slot_id][g][sl * E + e] = acc[g][e];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < group * D; idx += blockDim.x) {
    const int g = idx / D, d = idx % D;
    float big = -INFINITY;
    for (int i = 0; i < kSlots; ++i) big = fmaxf(big, sm_m[i][g]);
    float sum = 0.0f, value = 0.0f;
    if (big != -INFINITY) {
      for (int i = 0; i < kSlots; ++i) {
        const float w = expf(sm_m[i][g] - big);  // 0 for a slot that saw no key
        sum += sm_l[i][g] * w;
        value += sm_acc[i][g][d] * w;
      }
    }
    const int64_t row = static_cast<int64_t>(t) * p.num_q_heads + kh * group + g;
    const float result = sum > 0.0f ? value / sum : 0.0f;  // no visible key: zeros, as the CPU
    if (p.num_splits == 1) {
      static_cast<T*>(p.out)[row * D + d] = FromFloat<T>(result);
    } else {
      p.partial_out[(row * p.num_splits + split) * D + d] = result;
      if (d == 0) {
        p.partial_lse[row * p.num_splits + split] = sum > 0.0f ? big + logf(sum) : -INFINITY;
      }
    }
  }
}

// Combines the splits of one (token, query head): out = Σ exp(lse_i − M) o_i / Σ exp(lse_i − M).
template <typename T, int D>
__global__ void __launch_bounds__(D) DecodeMergeKernel(DecodeAttentionParams p) {
  const int64_t row = blockIdx.x;  // token · num_q_heads + head
  const int d = threadIdx.x;
  const float* lse = p.partial_lse + row * p.num_splits;
  float big = -INFINITY;
  for (int i = 0; i < p.num_splits; ++i) big = fmaxf(big, lse[i]);
  float sum = 0.0f, value = 0.0f;
  if (big != -INFINITY) {
    for (int i = 0; i < p.num_splits; ++i) {
      const float w = expf(lse[i] - big);
      sum += w;
      value += w * p.partial_out[(row * p.num_splits + i) * D + d];
    }
  }
  static_cast<T*>(p.out)[row * D + d] = FromFloat<T>(sum > 0.0f ? value / sum : 0.0f);
}

}  // namespace

DecodeSplitPlan PlanDecodeSplits(int64_t max_visible_keys, int num_tokens, int num_kv_heads,
                                 int num_sms) {
  constexpr int64_t kMinKeysPerSplit = 256;
  const int64_t blocks = static_cast<int64_t>(num_tokens) * num_kv_heads;
  const int64_t wanted = blocks > 0 ? (2 * static_cast<int64_t>(num_sms) + blocks - 1) / blocks : 1;
  const int64_t most = std::max<int64_t>(1, max_visible_keys / kMinKeysPerSplit);
  const int64_t splits = std::clamp<int64_t>(wanted, 1, std::min<int64_t>(most, 1024));
  if (splits == 1) return {};
  // Whole granules per split; recounting the splits after rounding up leaves none empty.
  const int64_t per = ((max_visible_keys + splits - 1) / splits + kDecodeSplitGranule - 1) /
                      kDecodeSplitGranule * kDecodeSplitGranule;
  return {.num_splits = static_cast<int>((max_visible_keys + per - 1) / per),
          .keys_per_split = static_cast<int>(per)};
}

cudaError_t DecodeAttentionCuda(const DecodeAttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  if (p.num_kv_heads <= 0 || p.num_q_heads % p.num_kv_heads != 0 ||
      p.num_q_heads / p.num_kv_heads > kAttentionMaxGroup || p.num_splits < 1 ||
      p.num_tokens > 65535 || p.num_kv_heads > 65535 ||
      (p.num_splits > 1 &&
       (p.keys_per_split < 0 || p.partial_out == nullptr || p.partial_lse == nullptr))) {
    return cudaErrorInvalidValue;
  }
  const dim3 grid(p.num_splits, p.num_kv_heads, p.num_tokens);
  return RAMI_DISPATCH_DTYPE(p.cache.dtype, T, [&] {
    return RAMI_DISPATCH_HEAD_DIM(p.cache.head_dim, D, [&] {
      if (p.num_q_heads / p.num_kv_heads <= 4) {
        DecodeAttentionKernel<T, D, 4><<<grid, kWarps * 32, 0, stream>>>(p);
      } else {
        DecodeAttentionKernel<T, D, kAttentionMaxGroup><<<grid, kWarps * 32, 0, stream>>>(p);
      }
      if (p.num_splits > 1) {
        DecodeMergeKernel<T, D>
            <<<static_cast<unsigned>(p.num_tokens * p.num_q_heads), D, 0, stream>>>(p);
      }
      return cudaGetLastError();
    });
  });
}

}  // namespace rami::kernels
