// One layer's decode attention over a synthetic DMS-layout cache, for `rami-bench decode`.
// Layout as kernels/paged_attention.h describes it: stream s = (sequence, KV head), with a kept
// list and a window list of pages. The synthetic cache of a sequence at `context` tokens:
//   dense: no kept tokens, the window holds all positions 0 … context−1 (infinite W);
//   dms:   the last W positions in the window, and (context − W)·(1 − rate) kept tokens (the
//          survivors of the rate·(context − W) evicted ones) — what DMS leaves at steady state.
// Every query sits at position context − 1, so it sees exactly kept + window keys.
#include "tools/bench_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cuda/attention.h"
#include "tools/bench_timing.h"
#include "tools/random_fill.h"

namespace rami::bench {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t KeptTokens(const AttentionCase& c) {
  if (!c.dms || c.context <= c.dms_window) return 0;
  return static_cast<int64_t>((c.context - c.dms_window) * (1.0 - c.dms_rate) + 0.5);
}

int64_t WindowTokens(const AttentionCase& c) {
  return c.dms ? std::min<int64_t>(c.context, c.dms_window) : c.context;
}

template <typename T>
int Upload(const std::vector<T>& host, DeviceBuffer& device, cudaStream_t stream) {
  RAMI_BENCH_CUDA(cudaMalloc(&device.ptr, sizeof(T) * std::max<size_t>(1, host.size())));
  RAMI_BENCH_CUDA(cudaMemcpyAsync(device.ptr, host.data(), sizeof(T) * host.size(),
                                  cudaMemcpyHostToDevice, stream));
  return 0;
}

}  // namespace

int64_t VisibleKeys(const AttentionCase& c) { return KeptTokens(c) + WindowTokens(c); }

int TimeDecodeAttention(const AttentionCase& c, cudaStream_t stream, AttentionResult* r) {
  *r = AttentionResult{};
  const int64_t kept = KeptTokens(c), window = WindowTokens(c);
  r->visible_keys = kept + window;
  const int64_t streams = int64_t{c.batch} * c.num_kv_heads;
  const int64_t pages_per_stream = CeilDiv(kept, c.page_size) + CeilDiv(window, c.page_size);
  const int64_t num_pages = streams * pages_per_stream;
  const size_t pool_elems = size_t(num_pages) * c.page_size * c.head_dim;
  r->cache_bytes = 2.0 * pool_elems * 2;  // K and V, bf16
  size_t free_bytes = 0, total_bytes = 0;
  RAMI_BENCH_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (num_pages > INT32_MAX || r->cache_bytes + (size_t{2} << 30) > double(free_bytes)) {
    return 0;  // does not fit: r->fits stays false
  }
  r->fits = true;

  // Page lists: each stream's kept pages, then its window pages, all distinct and in order.
  std::vector<int32_t> page_table(num_pages), kept_page_start(streams), kept_count(streams),
      window_page_start(streams), window_base(streams), window_start(streams);
  const int64_t kept_pages = CeilDiv(kept, c.page_size);
  for (int64_t s = 0; s < streams; ++s) {
    const int64_t first = s * pages_per_stream;
    for (int64_t i = 0; i < pages_per_stream; ++i) page_table[first + i] = int32_t(first + i);
    kept_page_start[s] = int32_t(first);
    kept_count[s] = int32_t(kept);
    window_page_start[s] = int32_t(first + kept_pages);
    window_base[s] = int32_t(c.context - window);  // slot 0 holds the oldest window position
    window_start[s] = int32_t(c.context - window);
  }
  std::vector<int32_t> token_stream(c.batch), positions(c.batch, c.context - 1);
  for (int t = 0; t < c.batch; ++t) token_stream[t] = t * c.num_kv_heads;  // KV head 0's stream

  DeviceBuffer k_pool, v_pool, q, out, d_table, d_kept_start, d_kept_count, d_window_start_page,
      d_window_base, d_window_start, d_token_stream, d_positions, partial_out, partial_lse;
  RAMI_BENCH_CUDA(cudaMalloc(&k_pool.ptr, pool_elems * 2));
  RAMI_BENCH_CUDA(cudaMalloc(&v_pool.ptr, pool_elems * 2));
  RAMI_BENCH_CUDA(
      FillUniformCuda(k_pool.ptr, kernels::DeviceDType::kBF16, pool_elems, 3, 0.0f, 1.0f, stream));
  RAMI_BENCH_CUDA(
      FillUniformCuda(v_pool.ptr, kernels::DeviceDType::kBF16, pool_elems, 4, 0.0f, 1.0f, stream));
  const size_t q_elems = size_t(c.batch) * c.num_q_heads * c.head_dim;
  RAMI_BENCH_CUDA(cudaMalloc(&q.ptr, q_elems * 2));
  RAMI_BENCH_CUDA(cudaMalloc(&out.ptr, q_elems * 2));
  RAMI_BENCH_CUDA(
      FillUniformCuda(q.ptr, kernels::DeviceDType::kBF16, q_elems, 5, 0.0f, 1.0f, stream));
  if (Upload(page_table, d_table, stream) || Upload(kept_page_start, d_kept_start, stream) ||
      Upload(kept_count, d_kept_count, stream) ||
      Upload(window_page_start, d_window_start_page, stream) ||
      Upload(window_base, d_window_base, stream) || Upload(window_start, d_window_start, stream) ||
      Upload(token_stream, d_token_stream, stream) || Upload(positions, d_positions, stream)) {
    return 1;
  }

  int device = 0, num_sms = 0;
  RAMI_BENCH_CUDA(cudaGetDevice(&device));
  RAMI_BENCH_CUDA(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  const kernels::DecodeSplitPlan split =
      kernels::PlanDecodeSplits(r->visible_keys, c.batch, c.num_kv_heads, num_sms);
  if (split.num_splits > 1) {
    const size_t rows = size_t(c.batch) * c.num_q_heads * split.num_splits;
    RAMI_BENCH_CUDA(cudaMalloc(&partial_out.ptr, rows * c.head_dim * sizeof(float)));
    RAMI_BENCH_CUDA(cudaMalloc(&partial_lse.ptr, rows * sizeof(float)));
  }

  kernels::DecodeAttentionParams p;
  p.cache.k_pool = k_pool.ptr;
  p.cache.v_pool = v_pool.ptr;
  p.cache.page_table = static_cast<const int32_t*>(d_table.ptr);
  p.cache.kept_page_start = static_cast<const int32_t*>(d_kept_start.ptr);
  p.cache.kept_count = static_cast<const int32_t*>(d_kept_count.ptr);
  p.cache.window_page_start = static_cast<const int32_t*>(d_window_start_page.ptr);
  p.cache.window_base = static_cast<const int32_t*>(d_window_base.ptr);
  p.cache.window_start = static_cast<const int32_t*>(d_window_start.ptr);
  p.cache.flags = nullptr;  // every window key of a query at context − 1 is within W anyway
  p.cache.flag_start = nullptr;
  p.cache.page_size = c.page_size;
  p.cache.head_dim = c.head_dim;
  p.cache.window = c.dms ? c.dms_window : (1 << 30);
  p.cache.dtype = kernels::DeviceDType::kBF16;
  p.q = q.ptr;
  p.out = out.ptr;
  p.token_stream = static_cast<const int32_t*>(d_token_stream.ptr);
  p.positions = static_cast<const int32_t*>(d_positions.ptr);
  p.num_tokens = c.batch;
  p.num_q_heads = c.num_q_heads;
  p.num_kv_heads = c.num_kv_heads;
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  p.num_splits = split.num_splits;
  p.keys_per_split = split.keys_per_split;
  p.partial_out = static_cast<float*>(partial_out.ptr);
  p.partial_lse = static_cast<float*>(partial_lse.ptr);

  cudaError_t launch = cudaSuccess;
  if (TimeMs(
          stream, c.iters,
          [&] {
            launch = kernels::DecodeAttentionCuda(p, stream);
            return launch == cudaSuccess ? 0 : 1;
          },
          &r->ms) != 0) {
    std::fprintf(stderr, "rami-bench: DecodeAttentionCuda (context %d, %s, batch %d): %s\n",
                 c.context, c.dms ? "dms" : "dense", c.batch, cudaGetErrorString(launch));
    return 1;
  }
  // Live K and V read once, q read, out written (page tables are noise next to them).
  r->bytes = double(streams) * r->visible_keys * c.head_dim * 2 * 2 + 2.0 * q_elems * 2;
  return 0;
}

}  // namespace rami::bench
