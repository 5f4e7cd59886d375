// The partitioned row draw; see sampling_partitioned.h.
#include "kernels/cpu/sampling_partitioned.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace rami::kernels::cpu_sampling {
namespace {

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
}  // namespace

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

}  // namespace rami::kernels::cpu_sampling
