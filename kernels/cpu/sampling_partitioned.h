// The CPU sampler's row draw (kernels/sampling.h), in double. Internal to kernels/cpu.
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
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cpu/sampling_order.h"

namespace rami::kernels::cpu_sampling {

// A token of a drawing row: its canonical key and w = exp((x − max) / T).
struct Item {
  uint64_t key;
  double w;
};
inline bool KeyLess(const Item& a, const Item& b) { return a.key < b.key; }

// Prefixes (and the rest of a walk past the sorted prefix) up to this many tokens are sorted
// and walked with the reference's own sums; beyond it the walk is found by partitioning.
inline constexpr int kExactPrefix = 1024;
// Partition ranges this short are sorted and walked with partial sums.
inline constexpr int kLeaf = 32;
// Partition rounds one walk may take before the row falls back (expected ~2 log2(vocab)).
inline constexpr int kMaxRounds = 200;
// Buckets of a whole-vocabulary kept set (Bucketing).
inline constexpr int kBuckets = 2048;
// Ranges this long are cut around a sample's estimate of the crossing (FindCrossing).
inline constexpr int kSampledRange = 8192;
inline constexpr int kSample = 1024;
inline constexpr int kSampleMargin = 40;

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

}  // namespace rami::kernels::cpu_sampling
