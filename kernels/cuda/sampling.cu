// Token sampling on the GPU (semantics in kernels/sampling.h, equality notes in sampling.h
// here). One block per output row: argmax and the raw normaliser by block reductions; a
// drawing row walks its canonical order (sorted beforehand by cub's stable segmented sort,
// logits descending, ties by ascending id) with block-wide scans in double for the top-p
// prefix, the min-p cut and the inverse-CDF draw; top-n by BlockTopN. The canonical order
// comes from one stable radix sort per pass of rows: key = (row in pass, order-preserving
// descending code of the logit), value = token id, so equal logits keep ascending ids (cub's
// plain radix sort compiles in a third of the time of its segmented sort).
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/cuda/canonical_order.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/sampling.h"

namespace rami::kernels {
namespace {

using cuda_detail::BlockBest;
using cuda_detail::BlockSum;

constexpr int kThreads = 1024;
static_assert(kThreads == 1024, "FirstCumulative scans exactly 32 warp totals");

// Sort keys: the low 32 bits order logits descending (the float's bits made monotone, then
// complemented), the high bits hold the row within the pass.
__device__ __forceinline__ uint32_t DescendingCode(float x) {
  const uint32_t bits = __float_as_uint(x + 0.0f);  // −0 → +0: it ties with +0, as on the CPU
  return ~(bits & 0x80000000u ? ~bits : bits ^ 0x80000000u);
}
__device__ __forceinline__ float FromDescendingCode(uint32_t code) {
  const uint32_t u = ~code;
  return __uint_as_float(u & 0x80000000u ? u ^ 0x80000000u : ~u);
}

// A row's canonical order and weights: w(j) = exp((x_(j) − max) / T) of the j-th token.
struct SortedRow {
  const uint64_t* keys;  // [vocab] sort keys in canonical order
  const int32_t* ids;    // [vocab] token ids in canonical order
  double max;
  double temperature;
  __device__ double W(int j) const {
    const float x = FromDescendingCode(static_cast<uint32_t>(keys[j]));
    return exp((static_cast<double>(x) - max) / temperature);
  }
};

// Σ w(j) for j < len.
__device__ double MassOf(const SortedRow& row, int len, double* scratch) {
  double sum = 0.0;
  for (int j = threadIdx.x; j < len; j += kThreads) sum += row.W(j);
  return BlockSum(sum, scratch);
}

// The first j < len with pred(w(j)), or len. w falls along the order, so the predicates used
// (w < min_p, w ≤ 0) hold on a suffix; a block minimum finds its start.
template <typename Pred>
__device__ int FirstWhere(const SortedRow& row, int len, Pred pred, int* found) {
  if (threadIdx.x == 0) *found = len;
  __syncthreads();
  for (int j = threadIdx.x; j < len; j += kThreads) {
    if (pred(row.W(j))) {
      atomicMin(found, j);
      break;  // later j of this thread are larger
    }
  }
  __syncthreads();
  const int result = *found;
  __syncthreads();
  return result;
}

// The first j < len whose inclusive cumulative weight reaches target (≥, or > when strict),
// in chunks of kThreads with a block scan in double; -1 if none. cum: Σ w up to that j, or
// over [0, len) when none.
__device__ int FirstCumulative(const SortedRow& row, int len, double target, bool strict,
                               double& cum, double* warp_total, int* found, double* found_cum) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  double carry = 0.0;
  for (int base = 0; base < len; base += kThreads) {
    const int j = base + threadIdx.x;
    double v = j < len ? row.W(j) : 0.0;
    for (int o = 1; o < 32; o *= 2) {
      const double up = __shfl_up_sync(0xffffffffu, v, o);
      if (lane >= o) v += up;
    }
    if (threadIdx.x == 0) *found = INT_MAX;
    if (lane == 31) warp_total[warp] = v;
    __syncthreads();
    if (warp == 0) {  // inclusive scan of the 32 warp totals
      double t = warp_total[lane];
      for (int o = 1; o < 32; o *= 2) {
        const double up = __shfl_up_sync(0xffffffffu, t, o);
        if (lane >= o) t += up;
      }
      warp_total[lane] = t;
    }
    __syncthreads();
    const double c = carry + (warp > 0 ? warp_total[warp - 1] : 0.0) + v;
    if (j < len && (strict ? c > target : c >= target)) atomicMin(found, j);
    __syncthreads();
    const int first = *found;
    if (first != INT_MAX) {
      if (j == first) *found_cum = c;
      __syncthreads();
      cum = *found_cum;
      return first;
    }
    carry += warp_total[31];
    __syncthreads();  // warp_total and found are rewritten by the next chunk
  }
  cum = carry;
  return -1;
}

// The drawn token of a row that samples (kernels/sampling.h: filters, then inverse CDF).
__device__ int32_t DrawToken(const SortedRow& row, int vocab, int top_k, double top_p, double min_p,
                             double u) {
  __shared__ double scratch[32];
  __shared__ int found;
  __shared__ double found_cum;
  int len = top_k > 0 ? min(top_k, vocab) : vocab;
  double mass = MassOf(row, len, scratch);
  if (top_p > 0.0 && top_p < 1.0) {
    double cum;
    const int j =
        FirstCumulative(row, len, top_p * mass, /*strict=*/false, cum, scratch, &found, &found_cum);
    if (j >= 0) len = j + 1;
    mass = cum;
  }
  if (min_p > 0.0) {
    len = FirstWhere(
        row, len, [min_p](double w) { return w < min_p; }, &found);
    mass = MassOf(row, len, scratch);
  }
  // A token with w = 0 is never chosen: the walk stops at the first one.
  const int positive = FirstWhere(
      row, len, [](double w) { return !(w > 0.0); }, &found);
  double cum;
  const int j =
      FirstCumulative(row, positive, u * mass, /*strict=*/true, cum, scratch, &found, &found_cum);
  return row.ids[j >= 0 ? j : max(positive - 1, 0)];
}

// Output rows [row_begin, row_begin + gridDim.x); sorted_keys/sorted_ids hold those rows'
// canonical orders (null when no row draws).
__global__ void __launch_bounds__(kThreads)
    SampleKernel(SampleParams p, int row_begin, const uint64_t* sorted_keys,
                 const int32_t* sorted_ids) {
  __shared__ float xs[32];
  __shared__ int ids[32];
  __shared__ double scratch[32];
  const int r = row_begin + blockIdx.x;
  const int64_t logits_row = p.logits_row != nullptr ? p.logits_row[r] : r;
  const float* x = p.logits + logits_row * p.vocab;

  // Argmax (lowest id on ties) and the raw normaliser at temperature 1.
  // The same pass checks that the row has a distribution (kernels/sampling.h): no NaN, no
  // +Inf, a finite logit; the verdict is block-uniform, so a broken row's block returns whole.
  float best_x = -INFINITY;
  int best_id = -1;
  int broken = 0, finite = 0;
  for (int c = threadIdx.x; c < p.vocab; c += kThreads) {
    const float v = x[c];
    broken |= isnan(v) || v == INFINITY;
    finite |= isfinite(v);
    if (best_id < 0 || cuda_detail::CanonicalBefore(v, c, best_x, best_id)) {
      best_x = v, best_id = c;
    }
  }
  if (__syncthreads_or(broken) || !__syncthreads_or(finite)) {
    if (threadIdx.x == 0) {
      p.token[r] = -1;
      p.logprob[r] = NAN;
    }
    for (int j = threadIdx.x; j < p.max_logprobs; j += kThreads) {
      p.top_ids[static_cast<int64_t>(r) * p.max_logprobs + j] = -1;
      p.top_logprobs[static_cast<int64_t>(r) * p.max_logprobs + j] = -INFINITY;
    }
    return;
  }
  BlockBest(best_x, best_id, xs, ids);
  double z = 0.0;
  for (int c = threadIdx.x; c < p.vocab; c += kThreads) {
    z += exp(static_cast<double>(x[c]) - best_x);
  }
  const double log_z = best_x + log(BlockSum(z, scratch));

  const double temperature = p.temperature[r];
  const int top_k = p.top_k[r];
  int32_t token = best_id;
  if (temperature != 0.0 && top_k != 1 && sorted_keys != nullptr) {
    const int64_t offset = static_cast<int64_t>(blockIdx.x) * p.vocab;
    const SortedRow row{sorted_keys + offset, sorted_ids + offset, best_x, temperature};
    token = DrawToken(row, p.vocab, top_k, p.top_p[r], p.min_p[r],
                      SampleUniform(p.seed[r], p.index[r]));
  }
  if (threadIdx.x == 0) {
    p.token[r] = token;
    p.logprob[r] = static_cast<float>(static_cast<double>(x[token]) - log_z);
  }
  if (p.max_logprobs > 0) {
    const int n = min(min(p.num_logprobs[r], p.max_logprobs), p.vocab);
    int32_t* top_ids = p.top_ids + static_cast<int64_t>(r) * p.max_logprobs;
    float* top_lp = p.top_logprobs + static_cast<int64_t>(r) * p.max_logprobs;
    cuda_detail::BlockTopN(x, p.vocab, n, static_cast<float>(log_z), top_ids, top_lp, xs, ids);
    for (int j = n + threadIdx.x; j < p.max_logprobs; j += kThreads) {
      top_ids[j] = -1;
      top_lp[j] = -INFINITY;
    }
  }
}

// Sort input of output rows [row_begin, row_begin + gridDim.x): keys (row in pass, descending
// logit code) and ids 0 … vocab−1.
__global__ void SortInputKernel(SampleParams p, int row_begin, uint64_t* keys, int32_t* ids) {
  const int r = row_begin + blockIdx.x;
  const int64_t logits_row = p.logits_row != nullptr ? p.logits_row[r] : r;
  const float* x = p.logits + logits_row * p.vocab;
  const int64_t base = static_cast<int64_t>(blockIdx.x) * p.vocab;
  for (int c = threadIdx.x; c < p.vocab; c += blockDim.x) {
    keys[base + c] = (static_cast<uint64_t>(blockIdx.x) << 32) | DescendingCode(x[c]);
    ids[base + c] = c;
  }
}

// Bits the radix sort looks at: the 32 of the logit code and 5 of the row (≤ 32 rows a pass).
constexpr int kSortEndBit = 37;
static_assert(kSampleSortRowsPerPass <= 32, "the row index must fit in kSortEndBit - 32 bits");

// Workspace layout for `rows` rows per pass: keys in/out, ids in/out, cub scratch.
struct Layout {
  size_t keys_in, keys_out, ids_in, ids_out, temp, temp_bytes, total;
};

size_t Align(size_t bytes) { return (bytes + 255) / 256 * 256; }

Layout MakeLayout(int rows, int vocab) {
  const size_t items = static_cast<size_t>(rows) * vocab;
  Layout l{};
  cub::DeviceRadixSort::SortPairs(
      nullptr, l.temp_bytes, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), static_cast<int>(items),
      0, kSortEndBit);
  l.keys_in = 0;
  l.keys_out = l.keys_in + Align(items * sizeof(uint64_t));
  l.ids_in = l.keys_out + Align(items * sizeof(uint64_t));
  l.ids_out = l.ids_in + Align(items * sizeof(int32_t));
  l.temp = l.ids_out + Align(items * sizeof(int32_t));
  l.total = l.temp + Align(l.temp_bytes);
  return l;
}

}  // namespace

size_t SampleWorkspaceBytes(int rows, int vocab) {
  if (rows <= 0 || vocab <= 0) return 0;
  return MakeLayout(std::min(rows, kSampleSortRowsPerPass), vocab).total;
}

cudaError_t SampleCuda(const SampleParams& p, const SampleWorkspace& workspace,
                       cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.vocab <= 0 || p.max_logprobs < 0 || p.max_logprobs > kMaxLogprobs ||
      static_cast<int64_t>(kSampleSortRowsPerPass) * p.vocab > INT32_MAX) {
    return cudaErrorInvalidValue;
  }
  if (!workspace.any_random) {
    SampleKernel<<<p.rows, kThreads, 0, stream>>>(p, 0, nullptr, nullptr);
    return cudaGetLastError();
  }
  const int pass_rows = std::min(p.rows, kSampleSortRowsPerPass);
  const Layout l = MakeLayout(pass_rows, p.vocab);
  if (workspace.data == nullptr || workspace.bytes < l.total) return cudaErrorInvalidValue;
  auto* bytes = static_cast<unsigned char*>(workspace.data);
  auto* keys_in = reinterpret_cast<uint64_t*>(bytes + l.keys_in);
  auto* keys_out = reinterpret_cast<uint64_t*>(bytes + l.keys_out);
  auto* ids_in = reinterpret_cast<int32_t*>(bytes + l.ids_in);
  auto* ids_out = reinterpret_cast<int32_t*>(bytes + l.ids_out);
  for (int begin = 0; begin < p.rows; begin += pass_rows) {
    const int n = std::min(pass_rows, p.rows - begin);
    SortInputKernel<<<n, 256, 0, stream>>>(p, begin, keys_in, ids_in);
    size_t temp_bytes = l.temp_bytes;
    const cudaError_t sorted =
        cub::DeviceRadixSort::SortPairs(bytes + l.temp, temp_bytes, keys_in, keys_out, ids_in,
                                        ids_out, n * p.vocab, 0, kSortEndBit, stream);
    if (sorted != cudaSuccess) return sorted;
    SampleKernel<<<n, kThreads, 0, stream>>>(p, begin, keys_out, ids_out);
  }
  return cudaGetLastError();
}

}  // namespace rami::kernels
