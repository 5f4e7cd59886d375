// The canonical order of a row's tokens (logit descending, then id) and the reference walk over
// it (kernels/sampling.h): the pieces the CPU sampler's two paths share (kernels/cpu/sampling.cc,
// sampling_partitioned.h). Internal to kernels/cpu.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace rami::kernels::cpu_sampling {

// Sort key of a logit: NaN ranks last, so a broken row still has a strict weak order (a NaN
// in a std::sort comparator is undefined behaviour). Hosts reject such rows before this.
inline float OrderKey(float x) {
  return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x;
}

// True when token a comes before token b in the canonical order: logit descending, then id
// ascending.
struct CanonicalLess {
  const float* x;
  bool operator()(int32_t a, int32_t b) const {
    const float ka = OrderKey(x[a]), kb = OrderKey(x[b]);
    return ka > kb || (ka == kb && a < b);
  }
};

// The canonical order as integers: token a comes before token b iff its key is smaller. High
// half: OrderKey(x) coded so that the code falls as the logit rises (−0 and +0, which tie, get
// one code); low half: the id, which breaks ties.
inline uint64_t CanonicalKey(float x, int32_t id) {
  const uint32_t bits = std::bit_cast<uint32_t>(OrderKey(x) + 0.0f);  // −0 + 0 = +0
  // Negative: all bits flipped; positive: the sign bit set. Branch-free: the sign is random.
  const uint32_t rising =
      bits ^ (static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31) | 0x80000000u);
  return static_cast<uint64_t>(~rising) << 32 | static_cast<uint32_t>(id);
}
inline int32_t IdOf(uint64_t key) { return static_cast<int32_t>(static_cast<uint32_t>(key)); }

// The first n tokens of the canonical order, as keys in order: keys[0, n). One pass keeping the
// n smallest keys in a max-heap: O(vocab), plus O(log n) per key that enters the heap.
void FirstKeys(const float* x, int vocab, int n, std::vector<uint64_t>& keys);

// The canonical order of one row, sorted only as far as it is read: ids[0, sorted) are the
// first `sorted` tokens in order; ids[sorted, vocab) are the others, unordered. Reading
// position i sorts at least up to i + 1, growing geometrically so that a long walk costs
// O(vocab log vocab) in total.
class CanonicalPrefix {
 public:
  CanonicalPrefix(const float* x, int vocab, std::vector<int32_t>& ids)
      : x_(x), vocab_(vocab), ids_(ids) {}

  int32_t At(int i) {
    if (i >= sorted_) Grow(i + 1);
    return ids_[i];
  }

 private:
  void Grow(int n) {
    if (sorted_ == 0) std::iota(ids_.begin(), ids_.begin() + vocab_, 0);
    n = std::min(vocab_, std::max({n, 2 * sorted_, 64}));
    const auto first = ids_.begin() + sorted_, nth = ids_.begin() + n;
    const CanonicalLess less{x_};
    // Bring the next n - sorted_ tokens to [sorted_, n), then order just those.
    if (n < vocab_) std::nth_element(first, nth, ids_.begin() + vocab_, less);
    std::sort(first, nth, less);
    sorted_ = n;
  }

  const float* x_;
  int vocab_;
  std::vector<int32_t>& ids_;  // [vocab] scratch shared by the rows of one call
  int sorted_ = 0;
};

// The reference walk (kernels/cpu/sampling_partitioned.h, top): the token chosen by the filters and
// the draw (not greedy), over a lazily sorted canonical order. w[vocab] is scratch.
int32_t SampleRowSorted(const float* x, int vocab, float max_logit, double temperature, int top_k,
                        double top_p, double min_p, double u, CanonicalPrefix& order,
                        std::vector<double>& w);

// One pass over a row: whether it has a distribution (no NaN, no +Inf, a finite logit), its
// argmax (the first canonical token: lowest id on ties) and its least finite logit.
struct RowScan {
  bool ok = false;
  int32_t argmax = 0;
  float least = 0.0f;
};
RowScan ScanRow(const float* x, int vocab);

}  // namespace rami::kernels::cpu_sampling
