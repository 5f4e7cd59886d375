// CPU twin of token sampling (semantics in kernels/sampling.h). Sums and weights are in
// double; the canonical order is materialised lazily, so a peaked distribution sorts only the
// few tokens that matter instead of the whole vocabulary.
#include "kernels/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

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

// The token chosen by the filters and the draw (not greedy). w[vocab] is scratch.
int32_t SampleRow(const float* x, int vocab, float max_logit, double temperature, int top_k,
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

// Whether row x defines a distribution: no NaN, no +Inf, at least one finite logit.
bool HasDistribution(const float* x, int vocab) {
  bool any_finite = false;
  for (int i = 0; i < vocab; ++i) {
    if (std::isnan(x[i]) || x[i] == std::numeric_limits<float>::infinity()) return false;
    any_finite = any_finite || std::isfinite(x[i]);
  }
  return any_finite;
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
  std::vector<int32_t> ids(p.vocab);  // canonical-order scratch, reused row to row
  std::vector<double> w(p.vocab);     // sampling weights scratch
  for (int r = 0; r < p.rows; ++r) {
    const int64_t row = p.logits_row != nullptr ? p.logits_row[r] : r;
    const float* x = p.logits + row * p.vocab;
    if (!HasDistribution(x, p.vocab)) {
      FlagBrokenRow(p, r);
      continue;
    }
    CanonicalPrefix order(x, p.vocab, ids);

    // Argmax (lowest id on ties) and the raw log-softmax normaliser, at temperature 1.
    int32_t argmax = 0;
    for (int i = 1; i < p.vocab; ++i) {
      if (OrderKey(x[i]) > OrderKey(x[argmax])) argmax = i;
    }
    const float max_logit = x[argmax];
    double z = 0.0;
    for (int i = 0; i < p.vocab; ++i) {
      if (!std::isnan(x[i])) z += std::exp(static_cast<double>(x[i]) - max_logit);
    }
    const double log_z = max_logit + std::log(z);
    auto raw_logprob = [&](int32_t id) {
      return static_cast<float>(static_cast<double>(x[id]) - log_z);
    };

    const double temperature = p.temperature[r];
    const int top_k = p.top_k[r];
    int32_t token = argmax;
    if (temperature != 0.0 && top_k != 1) {
      token = SampleRow(x, p.vocab, max_logit, temperature, top_k, p.top_p[r], p.min_p[r],
                        SampleUniform(p.seed[r], p.index[r]), order, w);
    }
    p.token[r] = token;
    p.logprob[r] = raw_logprob(token);

    if (p.max_logprobs > 0) {
      int32_t* top_ids = p.top_ids + static_cast<int64_t>(r) * p.max_logprobs;
      float* top_lp = p.top_logprobs + static_cast<int64_t>(r) * p.max_logprobs;
      const int n = std::min({p.num_logprobs[r], p.max_logprobs, p.vocab});
      for (int j = 0; j < p.max_logprobs; ++j) {
        top_ids[j] = j < n ? order.At(j) : -1;
        top_lp[j] = j < n ? raw_logprob(top_ids[j]) : -std::numeric_limits<float>::infinity();
      }
    }
  }
}

}  // namespace rami::kernels
