// The canonical order and the reference walk; see sampling_order.h.
#include "kernels/cpu/sampling_order.h"

namespace rami::kernels::cpu_sampling {

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

// The reference walk (kernels/cpu/sampling_partitioned.h, top): the token chosen by the filters and
// the draw (not greedy), over a lazily sorted canonical order. w[vocab] is scratch.
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

}  // namespace rami::kernels::cpu_sampling
