// Prefill attention over the DMS cache on the GPU (semantics in attention.h). One block per
// (tile of query tokens, KV head): the tile's query rows (token × head of the group, 64 rows)
// stay in shared memory, and the block walks the visible-key index space (kept, then window
// positions up to the tile's last query) in tiles of 32 keys loaded once for all rows. Each
// warp owns 8 rows: lane j scores key j of the tile (q row broadcast from shared memory, K rows
// padded against bank conflicts), online softmax per row, and lane l accumulates output
// channels l + 32·e. SIMT fp32 throughout (tensor cores are future work).
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/dispatch.cuh"

namespace rami::kernels {
namespace {

using cuda_detail::FromFloat;
using cuda_detail::LoadVec16;
using cuda_detail::ToFloat;
using cuda_detail::WarpMax;
using cuda_detail::WarpSum;

constexpr int kWarps = 8;
constexpr int kRows = PrefillTileRows();      // 64 query rows per block
constexpr int kRowsPerWarp = kRows / kWarps;  // 8
constexpr int kKeys = 32;                     // keys per tile: one per lane
constexpr int32_t kKeptPos = INT_MIN;         // a kept key: visible to every query
constexpr int32_t kNoKey = INT_MAX;           // past the end: visible to none

template <int D>
struct PrefillSmem {
  float q[kRows][D];
  float k[kKeys][D + 1];  // +1: lane j reads row j, column d — distinct banks
  float v[kKeys][D];
  int64_t key_offset[kKeys];  // element offset in the pools, -1: no key
  int32_t key_pos[kKeys];     // window position, kKeptPos or kNoKey
  uint8_t key_flag[kKeys];
};

template <typename T, int D>
__global__ void __launch_bounds__(kWarps * 32) PrefillAttentionKernel(PrefillAttentionParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  auto& sm = *reinterpret_cast<PrefillSmem<D>*>(smem_raw);
  constexpr int kPer = D / 32;       // output channels per lane
  constexpr int E = 16 / sizeof(T);  // elements per 16-byte load
  const PrefillTile tile = p.tiles[blockIdx.x];
  if (tile.num_tokens <= 0) return;  // whole block: no barrier reached yet
  const int kh = blockIdx.y;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const KvCacheCudaView& c = p.cache;
  const int32_t s = p.token_stream[tile.first_token] + kh;  // one stream for the whole tile
  int32_t max_pos = INT_MIN;
  for (int i = 0; i < tile.num_tokens; ++i)
    max_pos = max(max_pos, p.positions[tile.first_token + i]);
  const int32_t kept = c.kept_count[s];
  const int32_t window_start = c.window_start[s];
  const int32_t window_base = c.window_base[s];
  const int32_t n = kept + max(0, max_pos - window_start + 1);
  const uint8_t* flags = c.flags != nullptr ? c.flags + c.flag_start[s] : nullptr;
  const T* k_pool = static_cast<const T*>(c.k_pool);
  const T* v_pool = static_cast<const T*>(c.v_pool);

  // Query rows: row r is token r / G of the tile, head kh·G + r % G.
  const int rows = min(kRows, tile.num_tokens * group);
  for (int idx = threadIdx.x; idx < kRows * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D;
    sm.q[r][d] =
        r < rows ? ToFloat(static_cast<const T*>(
                       p.q)[(static_cast<int64_t>(tile.first_token + r / group) * p.num_q_heads +
                             kh * group + r % group) *
                                D +
                            d])
                 : 0.0f;
  }
  int32_t row_pos[kRowsPerWarp];
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kPer];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp * kRowsPerWarp + i;
    row_pos[i] = r < rows ? p.positions[tile.first_token + r / group] : INT_MIN;
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int e = 0; e < kPer; ++e) acc[i][e] = 0.0f;
  }

  for (int32_t key_base = 0; key_base < n; key_base += kKeys) {
    __syncthreads();  // the previous key tile is consumed (and q is stored, first time)
    if (threadIdx.x < kKeys) {
      const int32_t j = key_base + threadIdx.x;
      int64_t offset = -1;
      int32_t key_pos = kNoKey;
      uint8_t flag = 0;
      if (j < n) {
        int32_t list_start, index;
        if (j < kept) {
          list_start = c.kept_page_start[s];
          index = j;
          key_pos = kKeptPos;
        } else {
          key_pos = window_start + (j - kept);
          index = key_pos - window_base;
          list_start = c.window_page_start[s];
          flag = flags != nullptr ? flags[static_cast<int64_t>(index) * c.flag_stride] : 0;
        }
        const int32_t page = c.page_table[list_start + index / c.page_size];
        offset = (static_cast<int64_t>(page) * c.page_size + index % c.page_size) * D;
      }
      sm.key_offset[threadIdx.x] = offset;
      sm.key_pos[threadIdx.x] = key_pos;
      sm.key_flag[threadIdx.x] = flag;
    }
    __syncthreads();
    // 16-byte loads (E elements): slots are D·sizeof(T) ≥ 128-byte aligned in the pools.
    for (int idx = threadIdx.x; idx < kKeys * (D / E); idx += blockDim.x) {
      const int j = idx / (D / E), d0 = idx % (D / E) * E;
      const int64_t offset = sm.key_offset[j];
      float k[E], v[E];
      if (offset >= 0) {
        LoadVec16(k_pool + offset + d0, k);
        LoadVec16(v_pool + offset + d0, v);
      } else {
#pragma unroll
        for (int e = 0; e < E; ++e) k[e] = v[e] = 0.0f;
      }
#pragma unroll
      for (int e = 0; e < E; ++e) {
        sm.k[j][d0 + e] = k[e];
        sm.v[j][d0 + e] = v[e];
      }
    }
    __syncthreads();

    const int32_t key_pos = sm.key_pos[lane];
    const bool key_flag = sm.key_flag[lane] != 0;
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp * kRowsPerWarp + i;
      if (r >= rows) break;  // uniform over the warp
      const int32_t t = row_pos[i];
      // dms.md §3: kept keys always; window key p iff p ≤ t and (t − p ≤ W or flag 0).
      const bool visible = key_pos == kKeptPos || (key_pos != kNoKey && key_pos <= t &&
                                                   (t - key_pos <= c.window || !key_flag));
      float dot = 0.0f;
#pragma unroll 16
      for (int d = 0; d < D; ++d) dot += sm.q[r][d] * sm.k[lane][d];
      const float score = visible ? dot * p.scale : -INFINITY;
      const float m_new = fmaxf(m[i], WarpMax(score));
      if (m_new == -INFINITY) continue;     // nothing visible yet for this row (uniform)
      const float w = expf(score - m_new);  // 0 for invisible keys
      const float corr = expf(m[i] - m_new);
      l[i] = l[i] * corr + WarpSum(w);
      m[i] = m_new;
#pragma unroll
      for (int e = 0; e < kPer; ++e) acc[i][e] *= corr;
      for (int jj = 0; jj < kKeys; ++jj) {
        const float wj = __shfl_sync(0xffffffffu, w, jj);
#pragma unroll
        for (int e = 0; e < kPer; ++e) acc[i][e] += wj * sm.v[jj][lane + 32 * e];
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int r = warp * kRowsPerWarp + i;
    if (r >= rows) break;
    T* out = static_cast<T*>(p.out) +
             (static_cast<int64_t>(tile.first_token + r / group) * p.num_q_heads + kh * group +
              r % group) *
                 D;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      out[lane + 32 * e] = FromFloat<T>(l[i] > 0.0f ? acc[i][e] / l[i] : 0.0f);
    }
  }
}

template <typename T, int D>
cudaError_t LaunchPrefill(const PrefillAttentionParams& p, cudaStream_t stream) {
  constexpr size_t kSmem = sizeof(PrefillSmem<D>);  // ~65 KiB at D = 128: opt in above 48 KiB
  // The opt-in is per device, not per process: set it at every launch (a cheap host call), so
  // a worker that launches on several devices, or on another device than its first, is right.
  const cudaError_t attribute = cudaFuncSetAttribute(
      PrefillAttentionKernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attribute != cudaSuccess) return attribute;
  const dim3 grid(p.num_tiles, p.num_kv_heads);
  PrefillAttentionKernel<T, D><<<grid, kWarps * 32, kSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

std::vector<PrefillTile> PlanPrefillTiles(const std::vector<int32_t>& chunk_first,
                                          const std::vector<int32_t>& chunk_length, int group) {
  std::vector<PrefillTile> tiles;
  const int per_tile = PrefillTileTokens(group);
  for (size_t i = 0; i < chunk_first.size(); ++i) {
    for (int32_t done = 0; done < chunk_length[i]; done += per_tile) {
      tiles.push_back({.first_token = chunk_first[i] + done,
                       .num_tokens = std::min(per_tile, chunk_length[i] - done)});
    }
  }
  return tiles;
}

cudaError_t PrefillAttentionCuda(const PrefillAttentionParams& p, cudaStream_t stream) {
  if (p.num_tiles == 0) return cudaSuccess;
  if (p.num_kv_heads <= 0 || p.num_q_heads % p.num_kv_heads != 0 ||
      p.num_q_heads / p.num_kv_heads > kAttentionMaxGroup || p.num_kv_heads > 65535) {
    return cudaErrorInvalidValue;
  }
  return RAMI_DISPATCH_DTYPE(p.cache.dtype, T, [&] {
    return RAMI_DISPATCH_HEAD_DIM(p.cache.head_dim, D,
                                  [&] { return LaunchPrefill<T, D>(p, stream); });
  });
}

}  // namespace rami::kernels
