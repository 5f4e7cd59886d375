// CPU twin of token sampling (semantics in kernels/sampling.h). Weights and sums are in double.
//
// The reference. kernels/sampling.h fixes the walk: cumulative w taken token by token in
// canonical order, C_j = C_{j-1} + w_(j) rounded at each step; the kept set's mass is that
// walk's sum too, except over the whole vocabulary, where it is summed in id order. Every
// decision (the top-p cut, the min-p cut, the drawn token) compares a C_j with a target, so a
// token chosen "bit for bit" needs these very C_j near the decision. SampleRowSorted walks them
// over a canonical order sorted as far as the walk reads; a flat row's draw reads half the
// vocabulary, so it sorts half of it.
//
// The partitioned path (RowSampler::DrawPartitioned) gets the same decisions without sorting
// the row, in expected O(vocab). Without top-k the row is laid out bucket by bucket while its
// weights are computed (Bucketing: a counting sort on the logit, each bucket's Σ w beside it),
// so a walk's crossing is found in one bucket from the buckets' masses. Within a bucket, and
// in a top-k set, a quickselect on the canonical order keeps Σ w of each part and descends
// into the part where the cumulative w crosses the target (FindCrossing). Top-k takes its k
// tokens by one pass with a heap (k ≤ kExactPrefix) or nth_element, and weighs only those.
// These sums are in another order than the reference's, so they may differ from the C_j in the
// last bits: by at most SumError (a bound on rounding, both ways). A decision whose sum lies
// farther than that from its target is the reference's decision; one within it — rare: u ·
// mass within ~j·2⁻⁵⁰·mass of a C_j, or exact ties — makes the row fall back to
// SampleRowSorted. Walks within the first kExactPrefix tokens sort those and use the
// reference's own sums. Either way the chosen token is the reference's, for every row and
// uniform (tests/unit/sampling_exact_test.cc).
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "kernels/cpu/sampling_internal.h"
#include "kernels/sampling.h"

namespace rami::kernels {
namespace {

// Sort key of a logit: NaN ranks last, so a broken row still has a strict weak order (a NaN
// in a std::sort comparator is undefined behaviour). Hosts reject such rows before this.
float OrderKey(float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; }

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
uint64_t CanonicalKey(float x, int32_t id) {
  const uint32_t bits = std::bit_cast<uint32_t>(OrderKey(x) + 0.0f);  // −0 + 0 = +0
  // Negative: all bits flipped; positive: the sign bit set. Branch-free: the sign is random.
  const uint32_t rising =
      bits ^ (static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31) | 0x80000000u);
  return static_cast<uint64_t>(~rising) << 32 | static_cast<uint32_t>(id);
}
int32_t IdOf(uint64_t key) { return static_cast<int32_t>(static_cast<uint32_t>(key)); }

// The first n tokens of the canonical order, as keys in order: keys[0, n). One pass keeping the
// n smallest keys in a max-heap: O(vocab), plus O(log n) per key that enters the heap.
void FirstKeys(const float* x, int vocab, int n, std::vector<uint64_t>& keys) {
  keys.clear();
  if (n <= 0) return;
  const int first = std::min(n, vocab);
  for (int i = 0; i < first; ++i) keys.push_back(CanonicalKey(x[i], i));
  std::make_heap(keys.begin(), keys.end());
  // Once the heap is full only a logit at least that of its last token can enter: most tokens
  // cost one float comparison.
  float floor = OrderKey(x[IdOf(keys.front())]);
  for (int i = first; i < vocab; ++i) {
    if (OrderKey(x[i]) < floor) continue;
    const uint64_t key = CanonicalKey(x[i], i);
    if (key < keys.front()) {
      std::pop_heap(keys.begin(), keys.end());
      keys.back() = key;
      std::push_heap(keys.begin(), keys.end());
      floor = OrderKey(x[IdOf(keys.front())]);
    }
  }
  std::sort_heap(keys.begin(), keys.end());
}

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

// The reference walk (see the top of the file): the token chosen by the filters and the draw
// (not greedy), over a lazily sorted canonical order. w[vocab] is scratch.
int32_t SampleRowSorted(const float* x, int vocab, float max_logit, double temperature, int top_k,
                        double top_p, double min_p, double u, CanonicalPrefix& order,
                        std::vector<double>& w) {
  // w_i = exp((x_i - max) / T) ∈ [0, 1], 1 for the argmax; NaN logits weigh nothing.
  for (int i = 0; i < vocab; ++i) {
    const double z = (static_cast<double>(x[i]) - max_logit) / temperature;
    w[i] = std::isnan(z) ? 0.0 : std::exp(z);
  }

  // The kept set is always the canonical prefix [0, len); mass is its Σ w. Only a prefix that
  // is the whole vocabulary is summed in id order (no sort needed for it).
  int len = top_k > 0 ? std::min(top_k, vocab) : vocab;
  double mass = 0.0;
  if (len == vocab) {
    for (int i = 0; i < vocab; ++i) mass += w[i];
  } else {
    for (int j = 0; j < len; ++j) mass += w[order.At(j)];
  }

  if (top_p > 0.0 && top_p < 1.0) {
    // Shortest prefix reaching top_p of the top-k mass; the first token always stays.
    const double target = top_p * mass;
    double cum = 0.0;
    int j = 0;
    while (j < len) {
      cum += w[order.At(j++)];
      if (cum >= target) break;
    }
    len = j;
    mass = cum;
  }

  if (min_p > 0.0) {
    // p_i ≥ min_p · p_max ⇔ w_i ≥ min_p (w_max = 1); w falls along the canonical order, so
    // this keeps a prefix, never empty since min_p ≤ 1.
    if (len == vocab) {
      len = 0;
      mass = 0.0;
      for (int i = 0; i < vocab; ++i) {
        if (w[i] >= min_p) {
          ++len;
          mass += w[i];
        }
      }
    } else {
      int j = 0;
      double cum = 0.0;
      while (j < len && w[order.At(j)] >= min_p) cum += w[order.At(j++)];
      len = j;
      mass = cum;
    }
  }

  // Inverse CDF over the kept prefix. If rounding leaves the walk short of the target (mass
  // may have been summed in another order), the last kept token with w > 0 is chosen.
  const double target = u * mass;
  double cum = 0.0;
  int32_t last_positive = order.At(0);
  for (int j = 0; j < len; ++j) {
    const int32_t id = order.At(j);
    if (w[id] <= 0.0) break;  // w falls along the order: nothing later can be drawn
    cum += w[id];
    last_positive = id;
    if (cum > target) return id;
  }
  return last_positive;
}

// One pass over a row: whether it has a distribution (no NaN, no +Inf, a finite logit), its
// argmax (the first canonical token: lowest id on ties) and its least finite logit.
struct RowScan {
  bool ok = false;
  int32_t argmax = 0;
  float least = 0.0f;
};
RowScan ScanRow(const float* x, int vocab) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  bool broken = false;
  int32_t argmax = 0;
  float best = OrderKey(x[0]), least = kInf;
  for (int i = 0; i < vocab; ++i) {
    const float v = x[i];
    broken |= std::isnan(v) || v == kInf;
    if (v > best) {
      best = v;
      argmax = i;
    }
    if (v > -kInf && v < least) least = v;
  }
  return {.ok = !broken && least < kInf, .argmax = argmax, .least = least};
}

// A token of a drawing row: its canonical key and w = exp((x − max) / T).
struct Item {
  uint64_t key;
  double w;
};
bool KeyLess(const Item& a, const Item& b) { return a.key < b.key; }

// Prefixes (and the rest of a walk past the sorted prefix) up to this many tokens are sorted
// and walked with the reference's own sums; beyond it the walk is found by partitioning.
constexpr int kExactPrefix = 1024;
// Partition ranges this short are sorted and walked with partial sums.
constexpr int kLeaf = 32;
// Partition rounds one walk may take before the row falls back (expected ~2 log2(vocab)).
constexpr int kMaxRounds = 200;
// Buckets of a whole-vocabulary kept set (Bucketing).
constexpr int kBuckets = 2048;
// Ranges this long are cut around a sample's estimate of the crossing (FindCrossing).
constexpr int kSampledRange = 8192;
constexpr int kSample = 1024;
constexpr int kSampleMargin = 40;

// Moves the items of [lo, hi) whose key is below `key` to [lo, m) and returns m; *sum receives
// their Σ w. Branch-free Lomuto; four partial sums so that the additions do not wait on each
// other (any order will do: see SumError).
int PartitionBelow(Item* items, int lo, int hi, uint64_t key, double* sum) {
  int m = lo;
  double part[4] = {0.0, 0.0, 0.0, 0.0};
  for (int j = lo; j < hi; ++j) {
    const Item item = items[j];
    const bool below = item.key < key;
    items[j] = items[m];
    items[m] = item;
    part[j & 3] += below ? item.w : 0.0;
    m += below;
  }
  *sum = (part[0] + part[1]) + (part[2] + part[3]);
  return m;
}

// A bound on |Ĉ − C|, Ĉ any-order sum of n non-negative weights (the partitioned path's), C
// the reference's sequential sum of the same weights: each is within γ_{n−1}·S of the exact
// sum S (γ_m = m·2⁻⁵³ / (1 − m·2⁻⁵³)), so they differ by at most ~n·2⁻⁵²·Ĉ. Twice that covers
// the rounding of the comparisons that use it as well.
double SumError(int64_t n, double sum) { return static_cast<double>(n) * 0x1p-51 * sum; }

// Whether the reference's cumulative sum has reached its target, from a sum c within ±c_err
// of the reference's and a target t within ±t_err of the reference's: `strict` asks c > t
// (the draw), otherwise c ≥ t (top-p). Exact operands answer exactly.
enum class Verdict { kNo, kYes, kUnsure };
Verdict Crossed(double c, double c_err, double t, double t_err, bool strict) {
  if (c_err == 0.0 && t_err == 0.0) return (strict ? c > t : c >= t) ? Verdict::kYes : Verdict::kNo;
  const double err = c_err + t_err;
  if (c - err > t) return Verdict::kYes;
  if (c + err < t) return Verdict::kNo;
  return Verdict::kUnsure;
}

// The target f · mass of a walk (f = top_p or u) and its half-width, given mass within ±err.
// fl(f · m) is monotone in m, so the reference's target is within f·err plus a rounding of the
// product (2⁻⁵⁰·t: eight times the rounding) of ours; exact when mass is.
double TargetError(double f, double mass_err, double target) {
  return mass_err == 0.0 ? 0.0 : f * mass_err + 0x1p-50 * target;
}

// Buckets of a row's tokens by logit: b(x) = ⌊(max − x) · scale⌋, at most kBuckets − 1
// (−inf, and logits too far below the max to weigh anything, share the last). b never
// decreases along the canonical order, so each bucket is a stretch of it: a row laid out
// bucket by bucket (two passes: count, place), with each bucket's Σ w, is partitioned around
// kBuckets pivots at once.
struct Bucketing {
  double max = 0.0;
  double scale = 0.0;  // buckets per logit unit; 0: every finite logit is the max
  int operator()(float x) const {
    const double b = (max - static_cast<double>(x)) * scale;
    return b < kBuckets - 1 ? static_cast<int>(b) : kBuckets - 1;  // also NaN: −inf · 0
  }
};

// The kept set of a drawing row as the filters narrow it. items[0, len) hold the first len
// tokens of the canonical order (as a set), items[0, sorted) of them in order with cum_sorted
// the reference's C_{sorted−1} (exact). mass is the reference's Σ w of the kept set, within
// ±mass_err (0: exact); when mass_err > 0 it is C_{len−1}, as after top-k, top-p and min-p cuts.
struct Kept {
  Item* items = nullptr;
  int len = 0;
  int sorted = 0;
  double cum_sorted = 0.0;
  double mass = 0.0;
  double mass_err = 0.0;
  bool has_zero = false;  // some token of the first kept set has w = 0 (masked or underflowed)
  // For b < clean, items[start[b], start[b + 1]) hold exactly bucket b's tokens (in any
  // order) and bucket_mass[b] is their Σ w, taken in id order; clean is 0 without buckets.
  const int* start = nullptr;
  const double* bucket_mass = nullptr;
  int clean = 0;
};

// Sorts items[sorted, n) into place and walks their reference sums.
void SortPrefix(Kept& k, int n) {
  std::sort(k.items + k.sorted, k.items + n, KeyLess);
  for (int j = k.sorted; j < n; ++j) k.cum_sorted += k.items[j].w;
  k.sorted = n;
}

// Cuts the kept set to its first len tokens, of reference mass `mass` ± err. A cut inside the
// sorted prefix is exact (err 0) and leaves cum_sorted = mass.
void Cut(Kept& k, int len, double mass, double err) {
  k.len = len;
  k.mass = mass;
  k.mass_err = err;
  if (k.sorted > len) {
    k.sorted = len;
    k.cum_sorted = mass;
  }
}

// A mass with an error bound over a prefix short enough to sort becomes the reference's own.
void Exactify(Kept& k) {
  if (k.mass_err > 0.0 && k.len - k.sorted <= kExactPrefix) {
    SortPrefix(k, k.len);
    k.mass = k.cum_sorted;
    k.mass_err = 0.0;
  }
}

// Where the reference's walk over the kept set stops for a target: its position `pos` and
// C_pos (within ±err). For top-p (draw false) the first position with C_j ≥ t, else the last
// kept position. For the draw, the first with C_j > t, stopping at a w ≤ 0: then (or at the
// end) the last position walked with w > 0. ok false: the partial sums cannot tell.
struct Walk {
  bool ok = false;
  int pos = 0;
  double cum = 0.0;
  double err = 0.0;
};

class RowSampler {
 public:
  explicit RowSampler(int vocab)
      : items_(std::make_unique_for_overwrite<Item[]>(vocab)),
        start_(kBuckets + 1),
        fill_(kBuckets),
        bucket_mass_(kBuckets) {}

  // The token of a drawing row (kernels/sampling.h: filters, then the inverse CDF), the
  // reference's bit for bit. Preconditions: scan is ScanRow(x) of a row with a distribution,
  // temperature > 0, top_k ≠ 1. *raw_z receives Σ_i exp(x_i − max) in id order when the draw
  // computed it on the way (temperature 1, no top-k); else it is untouched.
  int32_t Draw(const float* x, int vocab, const RowScan& scan, double temperature, int top_k,
               double top_p, double min_p, double u, double* raw_z) {
    const int32_t argmax = scan.argmax;
    if (const int32_t token =
            DrawPartitioned(x, vocab, scan, temperature, top_k, top_p, min_p, u, raw_z);
        token >= 0) {
      partitioned_rows.fetch_add(1, std::memory_order_relaxed);
      return token;
    }
    sorted_rows.fetch_add(1, std::memory_order_relaxed);
    ids_.resize(vocab);
    w_.resize(vocab);
    CanonicalPrefix order(x, vocab, ids_);
    return SampleRowSorted(x, vocab, x[argmax], temperature, top_k, top_p, min_p, u, order, w_);
  }

  std::vector<uint64_t>& keys() { return keys_; }

  static inline std::atomic<int64_t> partitioned_rows{0}, sorted_rows{0};

 private:
  // The partitioned path (top of the file); -1 when a decision cannot be certified.
  int32_t DrawPartitioned(const float* x, int vocab, const RowScan& scan, double temperature,
                          int top_k, double top_p, double min_p, double u, double* raw_z);
  Walk FindCrossing(Kept& k, double t, double t_err, bool draw);

  std::unique_ptr<Item[]> items_;    // [vocab] the row's tokens, partitioned as the walks go
  std::vector<uint64_t> keys_;       // top-k and top-n heaps
  std::vector<Item> sample_;         // [kSample] FindCrossing's sample
  std::vector<int> start_;           // [kBuckets + 1] Kept::start
  std::vector<int> fill_;            // [kBuckets] write positions while laying buckets out
  std::vector<double> bucket_mass_;  // [kBuckets] Kept::bucket_mass
  Bucketing bucket_;                 // the buckets of the row being drawn
  std::vector<int32_t> ids_;         // [vocab] SampleRowSorted's canonical order (on first use)
  std::vector<double> w_;            // [vocab] SampleRowSorted's weights (on first use)
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;  // pivot positions (xorshift64; any sequence works)
};

Walk RowSampler::FindCrossing(Kept& k, double t, double t_err, bool draw) {
  const bool strict = draw;
  Item* items = k.items;
  // The reference's walk over sorted positions [from, to), from c = C_{from−1}: true when it
  // ends there (*walk set; not ok when the target is too uncertain to tell).
  auto walk_sorted = [&](int from, int to, double& c, Walk* walk) {
    for (int j = from; j < to; ++j) {
      const double w = items[j].w;
      if (draw && w <= 0.0) {
        *walk = {.ok = true, .pos = std::max(j - 1, 0), .cum = c};
        return true;
      }
      c += w;
      const Verdict v = Crossed(c, 0.0, t, t_err, strict);
      if (v != Verdict::kNo) {
        *walk = {.ok = v == Verdict::kYes, .pos = j, .cum = c};
        return true;
      }
    }
    return false;
  };

  Walk walk;
  double c = 0.0;
  if (walk_sorted(0, k.sorted, c, &walk)) return walk;
  if (k.sorted == k.len) return {.ok = true, .pos = k.len - 1, .cum = c};

  // Quickselect on the cumulative w over [lo, hi), which holds the crossing as far as the
  // partial sums tell; base: Σ w over [0, lo), exact while lo == sorted.
  int lo = k.sorted, hi = k.len;
  double base = c;
  if (k.clean > 0 && lo < k.start[k.clean]) {
    // Whole buckets: the bucket b where the walk crosses is found from their masses (partial
    // sums, like a partition's), and the search goes on within it. The rest of the bucket
    // that holds `sorted` comes first.
    int b = static_cast<int>(std::upper_bound(k.start, k.start + k.clean + 1, lo) - k.start);
    double rest = 0.0;
    for (int j = lo; j < std::min(hi, k.start[b]); ++j) rest += items[j].w;
    if (k.start[b] >= hi || (strict ? base + rest > t : base + rest >= t)) {
      hi = std::min(hi, k.start[b]);
    } else {
      base += rest;
      lo = k.start[b];
      for (; b < k.clean && k.start[b + 1] <= hi; ++b) {
        const double through = base + k.bucket_mass[b];
        if (strict ? through > t : through >= t) {
          hi = k.start[b + 1];
          break;
        }
        base = through;
        lo = k.start[b + 1];
      }
      // Past the clean buckets, or in one that the kept set cuts: [lo, hi) as it stands.
    }
  }
  int sampled_rounds = 0;
  for (int round = 0;; ++round) {
    if (hi - k.sorted <= kExactPrefix) {
      // Short enough to sort what is left before hi: the reference's own sums decide.
      double exact = k.cum_sorted;
      const int from = k.sorted;
      SortPrefix(k, hi);
      if (walk_sorted(from, hi, exact, &walk)) return walk;
      if (hi == k.len) return {.ok = true, .pos = k.len - 1, .cum = exact};
      return {};  // the partial sums sent the search short of the crossing: within their error
    }
    if (hi - lo <= kLeaf) {
      std::sort(items + lo, items + hi, KeyLess);
      // The walk must not have crossed before lo (C_{lo−1} ≈ base), then crosses in here.
      if (Crossed(base, SumError(lo, base), t, t_err, strict) != Verdict::kNo) return {};
      double cum = base;
      for (int j = lo; j < hi; ++j) {
        if (draw && items[j].w <= 0.0) return {};
        cum += items[j].w;
        const double err = SumError(j + 1, cum);
        const Verdict v = Crossed(cum, err, t, t_err, strict);
        if (v == Verdict::kUnsure) return {};
        if (v == Verdict::kNo) continue;
        // The draw's reference walk stops at its first w = 0: none may come before j.
        if (draw && k.has_zero) {
          for (int i = 0; i < lo; ++i) {
            if (items[i].w <= 0.0) return {};
          }
        }
        return {.ok = true, .pos = j, .cum = cum, .err = err};
      }
      return {};  // past hi: the walk ends short of the target, or the search went astray
    }
    if (round == kMaxRounds) return {};

    const uint32_t n = static_cast<uint32_t>(hi - lo);
    auto pick = [&] {  // a pseudo-random position of [lo, hi)
      rng_ ^= rng_ << 13;
      rng_ ^= rng_ >> 7;
      rng_ ^= rng_ << 17;
      return lo + static_cast<int>(rng_ % n);
    };
    if (n >= kSampledRange && sampled_rounds++ < 2) {
      // Cuts from a sample: kSample items at random positions, sorted, their w scaled by
      // n / kSample estimate the cumulative w along [lo, hi); the sample items kSampleMargin
      // ranks either side of the estimated crossing bracket it, most of the time. Cutting at
      // both (first the one that leaves less) leaves ~2·kSampleMargin/kSample of the range
      // after ~1.25 passes, where pivots alone take ~2.5. A bracket that misses costs time
      // only: the search goes on in whichever part holds the crossing.
      sample_.resize(kSample);
      for (Item& item : sample_) item = items[pick()];
      std::sort(sample_.begin(), sample_.end(), KeyLess);
      const double scale = static_cast<double>(n) / kSample;
      double estimate = base;
      int at = kSample;
      for (int i = 0; i < kSample && at == kSample; ++i) {
        estimate += scale * sample_[i].w;
        if (strict ? estimate > t : estimate >= t) at = i;
      }
      auto cut = [&](int rank) {
        if (rank < 0 || rank >= kSample) return;
        double sum = 0.0;
        const int m = PartitionBelow(items, lo, hi, sample_[rank].key, &sum);
        const double left = base + sum;
        if (strict ? left > t : left >= t) {
          hi = m;
        } else {
          lo = m;
          base = left;
        }
      };
      const bool late = 2 * at >= kSample;  // the crossing is estimated in the second half
      cut(late ? at - kSampleMargin : at + kSampleMargin);
      cut(late ? at + kSampleMargin : at - kSampleMargin);
      continue;
    }

    // Pivot: the median of three items at pseudo-random positions; [lo, m) ← the items
    // before it, then the pivot at m.
    int a = pick(), b = pick(), m3 = pick();
    if (items[b].key < items[a].key) std::swap(a, b);
    if (items[m3].key < items[b].key) b = items[m3].key < items[a].key ? a : m3;
    std::swap(items[b], items[hi - 1]);
    double sum = 0.0;
    const int m = PartitionBelow(items, lo, hi - 1, items[hi - 1].key, &sum);
    std::swap(items[m], items[hi - 1]);
    const double left = base + sum;
    const double through_pivot = left + items[m].w;
    if (strict ? left > t : left >= t) {
      hi = m;
    } else if (strict ? through_pivot > t : through_pivot >= t) {
      lo = m;
      hi = m + 1;
      base = left;
    } else {
      lo = m + 1;
      base = through_pivot;
    }
  }
}

int32_t RowSampler::DrawPartitioned(const float* x, int vocab, const RowScan& scan,
                                    double temperature, int top_k, double top_p, double min_p,
                                    double u, double* raw_z) {
  const int32_t argmax = scan.argmax;
  const float max_logit = x[argmax];
  const bool unit_temperature = temperature == 1.0;  // d / 1 is d: no division needed
  auto weight = [&](int32_t id) {                    // as SampleRowSorted computes it
    const double d = static_cast<double>(x[id]) - max_logit;
    const double z = unit_temperature ? d : d / temperature;
    return std::isnan(z) ? 0.0 : std::exp(z);
  };
  Kept k{.items = items_.get()};
  // The reference's min-p cut of the whole vocabulary (count and id-order Σ w), used when no
  // earlier filter cuts.
  int min_p_count = 0;
  double min_p_mass = 0.0;

  // Top-k, and w of the kept tokens only.
  const int len = top_k > 0 ? std::min(top_k, vocab) : vocab;
  if (len == vocab) {
    // The items laid out bucket by bucket (Bucketing): count, then place. The buckets span the
    // logits from the max down to the least finite one, or to 64·T below the max (w < e⁻⁶⁴).
    const double span = std::min(static_cast<double>(max_logit) - scan.least, 64.0 * temperature);
    bucket_ = {.max = max_logit, .scale = span > 0.0 ? (kBuckets - 1) / span : 0.0};
    std::fill(start_.begin(), start_.end(), 0);
    for (int i = 0; i < vocab; ++i) ++start_[bucket_(x[i]) + 1];
    for (int b = 0; b < kBuckets; ++b) start_[b + 1] += start_[b];
    std::copy(start_.begin(), start_.end() - 1, fill_.begin());
    std::fill(bucket_mass_.begin(), bucket_mass_.end(), 0.0);
    double mass = 0.0;  // in id order, as the reference
    for (int i = 0; i < vocab; ++i) {
      const double w = weight(i);
      const int b = bucket_(x[i]);
      items_[fill_[b]++] = {CanonicalKey(x[i], i), w};
      bucket_mass_[b] += w;
      mass += w;
      k.has_zero |= w <= 0.0;
      if (min_p > 0.0 && w >= min_p) {
        ++min_p_count;
        min_p_mass += w;
      }
    }
    k.len = vocab;
    k.mass = mass;
    k.start = start_.data();
    k.bucket_mass = bucket_mass_.data();
    k.clean = kBuckets;
    if (temperature == 1.0) *raw_z = mass;  // (x − max) / 1 is x − max: the same exp, same order
  } else if (len <= kExactPrefix) {
    FirstKeys(x, vocab, len, keys_);
    for (int j = 0; j < len; ++j) {
      items_[j] = {keys_[j], weight(IdOf(keys_[j]))};
      k.has_zero |= items_[j].w <= 0.0;
    }
    k.len = len;
    SortPrefix(k, len);  // already in order: just the reference's sums
    k.mass = k.cum_sorted;
  } else {
    for (int i = 0; i < vocab; ++i) items_[i] = {CanonicalKey(x[i], i), 0.0};
    std::nth_element(items_.get(), items_.get() + len, items_.get() + vocab, KeyLess);
    double mass = 0.0;
    for (int j = 0; j < len; ++j) {
      items_[j].w = weight(IdOf(items_[j].key));
      mass += items_[j].w;
      k.has_zero |= items_[j].w <= 0.0;
    }
    Cut(k, len, mass, SumError(len, mass));
    Exactify(k);
  }

  // The argmax (w = 1, C_0 = 1) heads every kept set.
  const Item first{CanonicalKey(max_logit, argmax), 1.0};

  if (top_p > 0.0 && top_p < 1.0) {
    const double t = top_p * k.mass;
    const double t_err = TargetError(top_p, k.mass_err, t);
    if (Crossed(1.0, 0.0, t, t_err, /*strict=*/false) == Verdict::kYes) {
      items_[0] = first;  // the kept set is {argmax}: whatever items_[0] held is cut anyway
      k.clean = 0;
      k.sorted = 1;
      k.cum_sorted = 1.0;
      Cut(k, 1, 1.0, 0.0);
    } else {
      const Walk walk = FindCrossing(k, t, t_err, /*draw=*/false);
      if (!walk.ok) return -1;
      Cut(k, walk.pos + 1, walk.cum, walk.err);
      Exactify(k);
    }
  }

  if (min_p > 0.0) {
    if (k.len == vocab) {
      // The reference counts and sums the whole vocabulary in id order, then keeps that many
      // canonical tokens: those with w ≥ min_p when w falls along the canonical order, which
      // the partition checks (the largest key kept comes before the smallest left).
      // With the buckets intact only the bucket where the kept count ends is partitioned:
      // the buckets before it must keep every token, and then none after it can (the count).
      int from = 0;
      if (k.clean == kBuckets) {
        from = k.start[std::upper_bound(k.start, k.start + kBuckets + 1, min_p_count - 1) -
                       k.start - 1];
        for (int j = 0; j < from; ++j) {
          if (items_[j].w < min_p) return -1;
        }
      } else {
        k.clean = 0;
      }
      const int to =
          k.clean == kBuckets
              ? k.start[std::upper_bound(k.start, k.start + kBuckets + 1, from) - k.start]
              : vocab;
      uint64_t last_kept = 0, first_left = ~uint64_t{0};
      int m = from;
      for (int j = from; j < to; ++j) {
        const Item item = items_[j];
        if (item.w >= min_p) {
          last_kept = std::max(last_kept, item.key);
          items_[j] = items_[m];
          items_[m++] = item;
        } else {
          first_left = std::min(first_left, item.key);
        }
      }
      if (m != min_p_count || (m < to && last_kept > first_left)) return -1;
      k.sorted = 0;
      k.cum_sorted = 0.0;
      Cut(k, m, min_p_mass, 0.0);
    } else {
      // The reference walks the kept prefix while w ≥ min_p: the cut comes before the first
      // kept token, canonically, with w < min_p.
      double cum = 0.0;
      int cut = -1;
      for (int j = 0; j < k.sorted && cut < 0; ++j) {
        if (items_[j].w < min_p) {
          cut = j;
        } else {
          cum += items_[j].w;
        }
      }
      if (cut >= 0) {
        Cut(k, cut, cum, 0.0);
      } else {
        uint64_t first_below = ~uint64_t{0};
        for (int j = k.sorted; j < k.len; ++j) {
          if (items_[j].w < min_p) first_below = std::min(first_below, items_[j].key);
        }
        if (first_below != ~uint64_t{0}) {  // else nothing is cut, mass stays C_{len−1}
          // Clean buckets before first_below's hold only tokens before it: partition from
          // its bucket on, which then no longer holds its own tokens alone.
          int from = k.sorted;
          if (k.clean > 0) {
            const int b = std::min(k.clean, bucket_(x[IdOf(first_below)]));
            from = std::max(from, k.start[b]);
            k.clean = b;
          }
          double sum = 0.0;
          for (int j = k.sorted; j < from; ++j) sum += items_[j].w;
          int m = from;
          for (int j = from; j < k.len; ++j) {
            const Item item = items_[j];
            if (item.key < first_below) {
              sum += item.w;
              items_[j] = items_[m];
              items_[m++] = item;
            }
          }
          const double mass = k.cum_sorted + sum;
          Cut(k, m, mass, m == k.sorted ? 0.0 : SumError(m, mass));
          Exactify(k);
        }
      }
    }
  }

  // Inverse CDF over the kept set.
  const double t = u * k.mass;
  const double t_err = TargetError(u, k.mass_err, t);
  if (Crossed(1.0, 0.0, t, t_err, /*strict=*/true) == Verdict::kYes) return argmax;
  const Walk walk = FindCrossing(k, t, t_err, /*draw=*/true);
  return walk.ok ? IdOf(items_[walk.pos].key) : -1;
}

// The outputs of a row without a distribution (kernels/sampling.h): token -1, nothing drawn.
void FlagBrokenRow(const SampleParams& p, int r) {
  p.token[r] = -1;
  p.logprob[r] = std::numeric_limits<float>::quiet_NaN();
  for (int j = 0; j < p.max_logprobs; ++j) {
    p.top_ids[static_cast<int64_t>(r) * p.max_logprobs + j] = -1;
    p.top_logprobs[static_cast<int64_t>(r) * p.max_logprobs + j] =
        -std::numeric_limits<float>::infinity();
  }
}

}  // namespace

void SampleCpu(const SampleParams& p) {
  RowSampler sampler(p.vocab);  // scratch reused row to row
  for (int r = 0; r < p.rows; ++r) {
    const int64_t row = p.logits_row != nullptr ? p.logits_row[r] : r;
    const float* x = p.logits + row * p.vocab;
    const RowScan scan = ScanRow(x, p.vocab);
    if (!scan.ok) {
      FlagBrokenRow(p, r);
      continue;
    }

    const int32_t argmax = scan.argmax;
    const float max_logit = x[argmax];
    const double temperature = p.temperature[r];
    const int top_k = p.top_k[r];
    int32_t token = argmax;
    double z = -1.0;  // the raw normaliser Σ exp(x_i − max), when the draw summed it
    if (temperature != 0.0 && top_k != 1) {
      token = sampler.Draw(x, p.vocab, scan, temperature, top_k, p.top_p[r], p.min_p[r],
                           SampleUniform(p.seed[r], p.index[r]), &z);
    }

    // The raw log-softmax normaliser, at temperature 1.
    if (z < 0.0) {
      z = 0.0;
      for (int i = 0; i < p.vocab; ++i) {
        if (!std::isnan(x[i])) z += std::exp(static_cast<double>(x[i]) - max_logit);
      }
    }
    const double log_z = max_logit + std::log(z);
    auto raw_logprob = [&](int32_t id) {
      return static_cast<float>(static_cast<double>(x[id]) - log_z);
    };
    p.token[r] = token;
    p.logprob[r] = raw_logprob(token);

    if (p.max_logprobs > 0) {
      int32_t* top_ids = p.top_ids + static_cast<int64_t>(r) * p.max_logprobs;
      float* top_lp = p.top_logprobs + static_cast<int64_t>(r) * p.max_logprobs;
      const int n = std::min({p.num_logprobs[r], p.max_logprobs, p.vocab});
      std::vector<uint64_t>& keys = sampler.keys();
      FirstKeys(x, p.vocab, n, keys);
      for (int j = 0; j < p.max_logprobs; ++j) {
        top_ids[j] = j < n ? IdOf(keys[j]) : -1;
        top_lp[j] = j < n ? raw_logprob(top_ids[j]) : -std::numeric_limits<float>::infinity();
      }
    }
  }
}

namespace cpu_sampling {

int32_t DrawToken(const float* x, int vocab, double temperature, int top_k, double top_p,
                  double min_p, double u) {
  RowSampler sampler(vocab);
  double z = 0.0;
  return sampler.Draw(x, vocab, ScanRow(x, vocab), temperature, top_k, top_p, min_p, u, &z);
}

PathCounts Paths() {
  return {.partitioned = RowSampler::partitioned_rows.load(std::memory_order_relaxed),
          .sorted = RowSampler::sorted_rows.load(std::memory_order_relaxed)};
}

}  // namespace cpu_sampling
}  // namespace rami::kernels
