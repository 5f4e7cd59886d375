// Token sampling on the GPU (semantics in kernels/sampling.h, equality notes in sampling.h
// here). One block per output row: argmax and the raw normaliser by block reductions; a
// drawing row walks its canonical order with block-wide scans in double for the top-p prefix,
// the min-p cut and the inverse-CDF draw; top-n by BlockTopN.
//
// The canonical order a drawing row walks: with a top-k of at most kSampleSelectMax (Qwen3's
// default is 20), only its first k tokens, selected in the block without sorting the row — a
// radix select on the logit's order code (four 8-bit digits, counts in shared memory) finds the
// k-th code, the tokens before it and the lowest ids tied with it are gathered, and a bitonic
// sort orders those k in shared memory. Other drawing rows (no top-k, or a larger one) read the
// whole order, sorted beforehand by one stable radix sort per pass of rows: key = (row in pass,
// order-preserving descending code of the logit), value = token id, so equal logits keep
// ascending ids (cub's plain radix sort compiles in a third of the time of its segmented sort).
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
static_assert(kSampleSelectMax <= kThreads, "SelectFirstK's bitonic sort: one key per thread");

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

// Shared scratch of a top-k selection (SelectFirstK).
struct SelectScratch {
  uint64_t keys[kSampleSelectMax];  // (code, id) while selecting; then the codes, in order
  int32_t ids[kSampleSelectMax];
  int hist[256];
  int counts[33];
};

// The first k (2 ≤ k ≤ kSampleSelectMax, k ≤ vocab) tokens of row x's canonical order, as a
// sorted row's keys (the descending code) in s.keys[0, k) and ids in s.ids[0, k), without
// sorting the row (top of the file). Every thread of the block calls it.
__device__ void SelectFirstK(const float* x, int vocab, int k, SelectScratch& s) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // Radix select, most significant digit first: after each round the code of the k-th token
  // agrees with `prefix` under `mask`, and it is the rank-th of the codes that do.
  uint32_t prefix = 0, mask = 0;
  int rank = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) s.hist[i] = 0;
    __syncthreads();
    for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
      const uint32_t code = DescendingCode(x[c]);
      if ((code & mask) == prefix) atomicAdd(&s.hist[(code >> shift) & 0xffu], 1);
    }
    __syncthreads();
    if (warp == 0) {  // lane l scans digits [8l, 8l + 8): the one lane where the rank falls
      int own = 0;
      for (int d = 0; d < 8; ++d) own += s.hist[8 * lane + d];
      int through = own;
      for (int o = 1; o < 32; o *= 2) {
        const int up = __shfl_up_sync(0xffffffffu, through, o);
        if (lane >= o) through += up;
      }
      int before = through - own;
      if (before < rank && rank <= through) {
        int d = 0;
        while (before + s.hist[8 * lane + d] < rank) before += s.hist[8 * lane + d++];
        s.counts[0] = 8 * lane + d;  // the k-th code's digit
        s.counts[1] = before;        // codes under it that agree with the prefix so far
      }
    }
    __syncthreads();
    prefix |= static_cast<uint32_t>(s.counts[0]) << shift;
    mask |= 0xffu << shift;
    rank -= s.counts[1];
    __syncthreads();  // counts are rewritten below or by the next round
  }
  // The k-th code is `prefix`: every token with a smaller code is kept (k − rank of them), and
  // the rank lowest ids of those tied with it.
  const uint32_t threshold = prefix;
  const int less = k - rank;
  if (threadIdx.x == 0) s.counts[0] = 0;
  __syncthreads();
  for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
    const uint32_t code = DescendingCode(x[c]);
    if (code < threshold) s.keys[atomicAdd(&s.counts[0], 1)] = uint64_t{code} << 32 | c;
  }
  // Ties in id order: a chunk of blockDim ids at a time, each tie placed by its rank in the
  // chunk (warp ballots, then the warps' counts before it).
  const int warps = static_cast<int>(blockDim.x / 32);
  for (int base = 0, taken = 0; base < vocab && taken < rank; base += blockDim.x) {
    const int c = base + threadIdx.x;
    const bool tie = c < vocab && DescendingCode(x[c]) == threshold;
    const unsigned ballot = __ballot_sync(0xffffffffu, tie);
    if (lane == 0) s.counts[1 + warp] = __popc(ballot);
    __syncthreads();
    int before = 0, total = 0;
    for (int w = 0; w < warps; ++w) {
      before += w < warp ? s.counts[1 + w] : 0;
      total += s.counts[1 + w];
    }
    const int at = taken + before + __popc(ballot & ((1u << lane) - 1));
    if (tie && at < rank) s.keys[less + at] = uint64_t{threshold} << 32 | c;
    taken += total;  // the same in every thread: the loop's exit is block-uniform
    __syncthreads();
  }
  // Bitonic sort of the k keys (padded to a power of two with keys after every token).
  int n = 1;
  while (n < k) n *= 2;
  for (int i = k + threadIdx.x; i < n; i += blockDim.x) s.keys[i] = ~uint64_t{0};
  __syncthreads();
  for (int size = 2; size <= n; size *= 2) {
    for (int stride = size / 2; stride > 0; stride /= 2) {
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const uint64_t a = s.keys[i], b = s.keys[j];
          if ((a > b) == ((i & size) == 0)) s.keys[i] = b, s.keys[j] = a;
        }
      }
      __syncthreads();
    }
  }
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    const uint64_t key = s.keys[j];
    s.ids[j] = static_cast<int32_t>(static_cast<uint32_t>(key));
    s.keys[j] = key >> 32;
  }
  __syncthreads();
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
  if (temperature != 0.0 && top_k != 1) {
    const double u = SampleUniform(p.seed[r], p.index[r]);
    if (!SampleRowNeedsSort(p.temperature[r], top_k)) {
      __shared__ SelectScratch select;
      const int k = min(top_k, p.vocab);
      if (k == 1) {  // a one-token vocabulary: only the argmax
        token = best_id;
      } else {
        SelectFirstK(x, p.vocab, k, select);
        const SortedRow row{select.keys, select.ids, best_x, temperature};
        token = DrawToken(row, p.vocab, k, p.top_p[r], p.min_p[r], u);
      }
    } else if (sorted_keys != nullptr) {  // SampleCuda sorts whenever such a row exists
      const int64_t offset = static_cast<int64_t>(blockIdx.x) * p.vocab;
      const SortedRow row{sorted_keys + offset, sorted_ids + offset, best_x, temperature};
      token = DrawToken(row, p.vocab, top_k, p.top_p[r], p.min_p[r], u);
    }
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
  if (!workspace.any_sorted) {
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
