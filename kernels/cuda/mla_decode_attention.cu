// Absorbed MLA decode attention over the DMS cache on the GPU (semantics in mla_attention.h).
// One block of kThreads per (query token, head block, split). Per tile of kTileKeys visible
// keys the block (1) stages the rows in shared memory as fp32, zero for invalid keys, (2)
// computes the heads × keys scores, one thread per pair, (3) updates each head's online
// softmax, one warp per head with a lane per key, and (4) rescales and accumulates the
// heads' latent contexts, one thread per channel for all heads (registers). The tiles live in
// shared memory because head_dim and latent_dim are runtime values (no per-shape
// instantiations: one kernel per dtype). A merge kernel combines splits as in
// decode_attention.cu.
//
// Shared memory (fp32), with H = heads per block, R = head_dim, Λ = latent_dim:
//   q [H][R] · rows [kTileKeys][R | 1] · p [H][kTileKeys] · acc [H][Λ] · m, l, corr [H]
//   · valid [kTileKeys]; V3 (H 16, R 576, Λ 512): 146 KiB, one block per SM.
// The row stride is odd so that the score loop (lane = key, same channel) is conflict-free.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/mla_attention.h"
#include "kernels/cuda/visible_keys.cuh"

namespace rami::kernels {
namespace {

using cuda_detail::FromFloat;
using cuda_detail::LoadVec16;
using cuda_detail::ToFloat;
using cuda_detail::WarpMax;
using cuda_detail::WarpSum;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTileKeys = 32;  // = warp size: the softmax step gives each lane one key

// Float offsets of the shared-memory arrays for `heads` heads per block.
struct MlaSmemLayout {
  int row_stride, q, rows, p, acc, m, l, corr, valid, total;
};
__host__ __device__ inline MlaSmemLayout MakeLayout(int heads, int head_dim, int latent_dim) {
  MlaSmemLayout s;
  s.row_stride = head_dim | 1;
  s.q = 0;
  s.rows = s.q + heads * head_dim;
  s.p = s.rows + kTileKeys * s.row_stride;
  s.acc = s.p + heads * kTileKeys;
  s.m = s.acc + heads * latent_dim;
  s.l = s.m + heads;
  s.corr = s.l + heads;
  s.valid = s.corr + heads;
  s.total = s.valid + kTileKeys;
  return s;
}

// heads_per_block: the block's head capacity (the last head block may hold fewer).
// vec_loads: rows are 16-byte multiples and the pool is 16-byte aligned.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    MlaDecodeKernel(MlaDecodeAttentionParams p, int heads_per_block, bool vec_loads) {
  extern __shared__ float smem[];
  const KvCacheCudaView& c = p.cache;
  const int row_dim = c.head_dim, latent = p.latent_dim;
  const MlaSmemLayout lay = MakeLayout(heads_per_block, row_dim, latent);
  float* q_s = smem + lay.q;
  float* rows_s = smem + lay.rows;
  float* p_s = smem + lay.p;
  float* acc_s = smem + lay.acc;
  float* m_s = smem + lay.m;
  float* l_s = smem + lay.l;
  float* corr_s = smem + lay.corr;
  float* valid_s = smem + lay.valid;

  const int split = blockIdx.x, t = blockIdx.z;
  const int h0 = blockIdx.y * heads_per_block;
  const int heads = min(heads_per_block, p.num_heads - h0);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int32_t s = p.token_stream[t];  // < 0: a padding token, an empty key range
  const int32_t pos = p.positions[t];
  const cuda_detail::VisibleKeys keys =
      cuda_detail::MakeVisibleKeys(c, s, pos, split, p.num_splits, p.keys_per_split);
  const int32_t begin = keys.begin, end = keys.end;
  const T* pool = static_cast<const T*>(c.k_pool);

  // The block's heads are consecutive, so their queries are one contiguous run.
  const T* q = static_cast<const T*>(p.q) + (static_cast<int64_t>(t) * p.num_heads + h0) * row_dim;
  for (int i = threadIdx.x; i < heads * row_dim; i += kThreads) q_s[i] = ToFloat(q[i]);
  for (int i = threadIdx.x; i < heads * latent; i += kThreads) acc_s[i] = 0.0f;
  for (int h = threadIdx.x; h < heads; h += kThreads) {
    m_s[h] = -INFINITY;
    l_s[h] = 0.0f;
  }

  // Element offset of visible key j's row, or false when j is past the split or an evicted
  // window token (dms.md §3: outside W and flagged).
  auto locate = [&](int32_t j, int64_t& offset) -> bool {
    const int64_t row = keys.Row(c, j);
    if (row < 0) return false;
    offset = row * row_dim;
    return true;
  };

  constexpr int E = 16 / sizeof(T);
  // The loop bound is uniform over the block, so every thread reaches every barrier.
  for (int32_t base = begin; base < end; base += kTileKeys) {
    __syncthreads();  // the previous tile's rows and probabilities are consumed
    // (1) Stage the tile: warp w loads rows w, w + kWarps, …; invalid rows are zeros (their
    // probability is 0, and 0 · stale shared memory could be NaN).
    for (int r = warp; r < kTileKeys; r += kWarps) {
      int64_t offset = 0;
      const bool valid = locate(base + r, offset);
      float* dst = rows_s + r * lay.row_stride;
      if (!valid) {
        for (int i = lane; i < row_dim; i += 32) dst[i] = 0.0f;
      } else if (vec_loads) {
        for (int v = lane; v < row_dim / E; v += 32) {
          float f[E];
          LoadVec16(pool + offset + v * E, f);
#pragma unroll
          for (int e = 0; e < E; ++e) dst[v * E + e] = f[e];
        }
      } else {
        for (int i = lane; i < row_dim; i += 32) dst[i] = ToFloat(pool[offset + i]);
      }
      if (lane == 0) valid_s[r] = valid ? 1.0f : 0.0f;
    }
    __syncthreads();
    // (2) Scores: a warp takes one head's 32 keys (lane = key), in the CPU's channel order.
    for (int pair = threadIdx.x; pair < heads * kTileKeys; pair += kThreads) {
      const int h = pair / kTileKeys, j = pair % kTileKeys;
      const float* qh = q_s + h * row_dim;
      const float* kj = rows_s + j * lay.row_stride;
      float dot = 0.0f;
      for (int i = 0; i < row_dim; ++i) dot += qh[i] * kj[i];
      p_s[pair] = valid_s[j] != 0.0f ? dot * p.scale : -INFINITY;
    }
    __syncthreads();
    // (3) Online softmax per head: scores → unnormalised probabilities, rescale factor.
    for (int h = warp; h < heads; h += kWarps) {
      const float score = p_s[h * kTileKeys + lane];
      const float m_old = m_s[h];
      const float m_new = fmaxf(m_old, WarpMax(score));
      float w = 0.0f, corr = 1.0f;
      if (m_new != -INFINITY) {      // else no valid key yet: nothing to add, nothing to rescale
        w = expf(score - m_new);     // 0 for an invalid key
        corr = expf(m_old - m_new);  // 0 when m_old is -inf (acc and l are 0 then)
      }
      const float sum = WarpSum(w);
      p_s[h * kTileKeys + lane] = w;
      if (lane == 0) {
        m_s[h] = m_new;
        l_s[h] = l_s[h] * corr + sum;
        corr_s[h] = corr;
      }
    }
    __syncthreads();
    // (4) acc[h][d] = corr[h] · acc[h][d] + Σ_j p[h][j] · row_j[d]. A thread owns channel d
    // of every head of the block, so each row value is read from shared memory once for all
    // heads (the probabilities are warp-wide broadcasts); per (h, d) the order is j ascending.
    for (int d = threadIdx.x; d < latent; d += kThreads) {
      float a[kMlaHeadsPerBlock];
#pragma unroll
      for (int h = 0; h < kMlaHeadsPerBlock; ++h) {
        a[h] = h < heads ? acc_s[h * latent + d] * corr_s[h] : 0.0f;
      }
      for (int j = 0; j < kTileKeys; ++j) {
        const float r = rows_s[j * lay.row_stride + d];
#pragma unroll
        for (int h = 0; h < kMlaHeadsPerBlock; ++h) {
          if (h < heads) a[h] += p_s[h * kTileKeys + j] * r;
        }
      }
#pragma unroll
      for (int h = 0; h < kMlaHeadsPerBlock; ++h) {
        if (h < heads) acc_s[h * latent + d] = a[h];
      }
    }
  }
  __syncthreads();

  for (int idx = threadIdx.x; idx < heads * latent; idx += kThreads) {
    const int h = idx / latent, d = idx % latent;
    const int64_t row = static_cast<int64_t>(t) * p.num_heads + h0 + h;
    const float l = l_s[h];
    const float result = l > 0.0f ? acc_s[idx] / l : 0.0f;  // no visible key: zeros, as the CPU
    if (p.num_splits == 1) {
      static_cast<T*>(p.out)[row * latent + d] = FromFloat<T>(result);
    } else {
      p.partial_out[(row * p.num_splits + split) * latent + d] = result;
      if (d == 0) {
        p.partial_lse[row * p.num_splits + split] = l > 0.0f ? m_s[h] + logf(l) : -INFINITY;
      }
    }
  }
}

// Combines the splits of one (token, head): out = Σ exp(lse_i − M) o_i / Σ exp(lse_i − M).
constexpr int kMergeThreads = 128;
template <typename T>
__global__ void __launch_bounds__(kMergeThreads) MlaMergeKernel(MlaDecodeAttentionParams p) {
  const int64_t row = blockIdx.x;  // token · num_heads + head
  const int latent = p.latent_dim;
  const float* lse = p.partial_lse + row * p.num_splits;
  float big = -INFINITY;
  for (int i = 0; i < p.num_splits; ++i) big = fmaxf(big, lse[i]);
  for (int d = threadIdx.x; d < latent; d += kMergeThreads) {
    float sum = 0.0f, value = 0.0f;
    if (big != -INFINITY) {
      for (int i = 0; i < p.num_splits; ++i) {
        const float w = expf(lse[i] - big);
        sum += w;
        value += w * p.partial_out[(row * p.num_splits + i) * latent + d];
      }
    }
    static_cast<T*>(p.out)[row * latent + d] = FromFloat<T>(sum > 0.0f ? value / sum : 0.0f);
  }
}

template <typename T>
cudaError_t LaunchMla(const MlaDecodeAttentionParams& p, int heads_per_block, size_t smem_bytes,
                      bool vec_loads, cudaStream_t stream) {
  // Above 48 KiB of dynamic shared memory a kernel must opt in (once per size is enough, but
  // the call is cheap and keeps the launcher stateless).
  if (smem_bytes > 48 * 1024) {
    const cudaError_t err =
        cudaFuncSetAttribute(MlaDecodeKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem_bytes));
    if (err != cudaSuccess) return err;
  }
  const int head_blocks = (p.num_heads + heads_per_block - 1) / heads_per_block;
  const dim3 grid(p.num_splits, head_blocks, p.num_tokens);
  MlaDecodeKernel<T><<<grid, kThreads, smem_bytes, stream>>>(p, heads_per_block, vec_loads);
  if (p.num_splits > 1) {
    MlaMergeKernel<T><<<static_cast<unsigned>(static_cast<int64_t>(p.num_tokens) * p.num_heads),
                        kMergeThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t MlaDecodeAttentionCuda(const MlaDecodeAttentionParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  const int row_dim = p.cache.head_dim;
  if (p.num_heads <= 0 || p.latent_dim <= 0 || p.latent_dim > row_dim || p.num_splits < 1 ||
      p.num_splits > 65535 || p.num_tokens > 65535 || p.q == nullptr || p.out == nullptr ||
      p.cache.k_pool == nullptr || p.cache.page_size <= 0 ||
      static_cast<int64_t>(p.num_tokens) * p.num_heads > 0x7fffffff ||
      (p.num_splits > 1 &&
       (p.keys_per_split < 0 || p.partial_out == nullptr || p.partial_lse == nullptr))) {
    return cudaErrorInvalidValue;
  }
  int device = 0, max_smem = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err != cudaSuccess) return err;
  // kMlaHeadsPerBlock heads per block, halved while the rows do not fit the shared memory.
  int heads_per_block = std::min(p.num_heads, kMlaHeadsPerBlock);
  auto smem_bytes = [&](int heads) {
    return sizeof(float) * static_cast<size_t>(MakeLayout(heads, row_dim, p.latent_dim).total);
  };
  while (heads_per_block > 1 && smem_bytes(heads_per_block) > static_cast<size_t>(max_smem)) {
    heads_per_block = (heads_per_block + 1) / 2;
  }
  const size_t bytes = smem_bytes(heads_per_block);
  if (bytes > static_cast<size_t>(max_smem) ||
      (p.num_heads + heads_per_block - 1) / heads_per_block > 65535) {
    return cudaErrorInvalidValue;
  }
  const int elem = DeviceDTypeSize(p.cache.dtype);
  const bool vec_loads = (static_cast<int64_t>(row_dim) * elem) % 16 == 0 &&
                         reinterpret_cast<uintptr_t>(p.cache.k_pool) % 16 == 0;
  return RAMI_DISPATCH_DTYPE(
      p.cache.dtype, T, [&] { return LaunchMla<T>(p, heads_per_block, bytes, vec_loads, stream); });
}

}  // namespace rami::kernels
