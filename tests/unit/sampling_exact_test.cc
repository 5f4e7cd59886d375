// The CPU sampler against a brute-force reference: kernels/sampling.h's walk over a canonical
// order sorted whole with std::sort, sums taken token by token in that order (the kept set's
// mass over the whole vocabulary, and min-p's count and mass over it, in id order): the CPU
// twin as it was before it partitioned rows. The token must be the same for every row, filter
// and uniform: random rows of several shapes (peaked, flat, near-ties, exact ties, ±0, -inf
// masks, weights that underflow to 0), the Philox uniforms and uniforms placed within a few
// ulps of a cumulative sum, top-p targets placed likewise. The sampler's partitioned path must
// carry the random draws; the placed ones make it fall back to its sorted walk (both checked).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/sampling_internal.h"
#include "kernels/sampling.h"

namespace rami {
namespace {

using kernels::cpu_sampling::DrawToken;
using kernels::cpu_sampling::PathCounts;
using kernels::cpu_sampling::Paths;

// The kept set of a reference row after the filters: its first `len` canonical tokens and the
// mass the draw scales u by.
struct ReferenceKept {
  int len = 0;
  double mass = 0.0;
};

// One row of logits at one temperature, its canonical order sorted whole.
class ReferenceRow {
 public:
  ReferenceRow(const std::vector<float>& x, double temperature) : x_(x), order_(x.size()) {
    std::iota(order_.begin(), order_.end(), 0);
    auto key = [](float v) { return std::isnan(v) ? -INFINITY : v; };
    std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) {
      return key(x_[a]) > key(x_[b]) || (key(x_[a]) == key(x_[b]) && a < b);
    });
    const float max = x_[order_[0]];
    w_.resize(x_.size());
    for (size_t i = 0; i < x_.size(); ++i) {
      const double z = (static_cast<double>(x_[i]) - max) / temperature;
      w_[i] = std::isnan(z) ? 0.0 : std::exp(z);
    }
  }

  int vocab() const { return static_cast<int>(x_.size()); }
  int32_t At(int j) const { return order_[j]; }  // the token at canonical position j

  // C_j: Σ w over the first j + 1 canonical tokens, token by token.
  double Cumulative(int j) const {
    double cum = 0.0;
    for (int i = 0; i <= j; ++i) cum += w_[order_[i]];
    return cum;
  }

  // top-k, then top-p, then min-p.
  ReferenceKept Kept(int top_k, double top_p, double min_p) const {
    const int vocab = this->vocab();
    int len = top_k > 0 ? std::min(top_k, vocab) : vocab;
    double mass = 0.0;
    if (len == vocab) {
      for (int i = 0; i < vocab; ++i) mass += w_[i];
    } else {
      for (int j = 0; j < len; ++j) mass += w_[order_[j]];
    }
    if (top_p > 0.0 && top_p < 1.0) {
      const double target = top_p * mass;
      double cum = 0.0;
      int j = 0;
      while (j < len) {
        cum += w_[order_[j++]];
        if (cum >= target) break;
      }
      len = j;
      mass = cum;
    }
    if (min_p > 0.0) {
      if (len == vocab) {
        len = 0;
        mass = 0.0;
        for (int i = 0; i < vocab; ++i) {
          if (w_[i] >= min_p) {
            ++len;
            mass += w_[i];
          }
        }
      } else {
        int j = 0;
        double cum = 0.0;
        while (j < len && w_[order_[j]] >= min_p) cum += w_[order_[j++]];
        len = j;
        mass = cum;
      }
    }
    return {len, mass};
  }

  // The inverse CDF over the kept set; a walk that rounding leaves short, or that meets a
  // w = 0, takes the last token walked with w > 0.
  int32_t Draw(int top_k, double top_p, double min_p, double u) const {
    const ReferenceKept kept = Kept(top_k, top_p, min_p);
    const double target = u * kept.mass;
    double cum = 0.0;
    int32_t last_positive = order_[0];
    for (int j = 0; j < kept.len; ++j) {
      const int32_t id = order_[j];
      if (w_[id] <= 0.0) break;
      cum += w_[id];
      last_positive = id;
      if (cum > target) return id;
    }
    return last_positive;
  }

 private:
  const std::vector<float>& x_;
  std::vector<int32_t> order_;  // canonical order
  std::vector<double> w_;       // by id
};

// Rows of the shapes named in the file comment.
const char* const kShapes[] = {"gauss",  "peaked", "flat",   "near_ties", "ties",  "equal",
                               "masked", "sparse", "signed", "wide",      "single"};

std::vector<float> MakeRow(const std::string& shape, int vocab, std::mt19937_64& rng) {
  std::vector<float> x(vocab);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(0, 4);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int i = 0; i < vocab; ++i) {
    if (shape == "gauss" || shape == "peaked") {
      x[i] = 3.0f * normal(rng);
    } else if (shape == "flat") {
      x[i] = normal(rng);
    } else if (shape == "near_ties") {
      x[i] = 5.0f + 1e-3f * normal(rng);  // a few thousand distinct floats: runs of ties
    } else if (shape == "ties") {
      x[i] = 0.5f * static_cast<float>(small(rng));
    } else if (shape == "equal") {
      x[i] = 0.25f;
    } else if (shape == "masked") {  // half the vocabulary masked
      x[i] = unit(rng) < 0.5 ? -INFINITY : 2.0f * normal(rng);
    } else if (shape == "sparse") {  // all but ~1% masked
      x[i] = unit(rng) < 0.99 ? -INFINITY : 2.0f * normal(rng);
    } else if (shape == "signed") {  // −0 and +0 tie
      const float values[] = {-0.0f, 0.0f, 1.0f, -1.0f, 0.0f};
      x[i] = values[small(rng)];
    } else if (shape == "wide") {  // most w underflow to 0 while the logit is finite
      x[i] = 400.0f * normal(rng);
    } else if (shape == "single") {
      x[i] = -INFINITY;
    }
  }
  std::uniform_int_distribution<int> token(0, vocab - 1);
  if (shape == "peaked" && vocab > 1) {
    // One token holding a mass in [0.3, 0.9] at temperature 1.
    const int top = token(rng);
    double rest = 0.0;
    for (int i = 0; i < vocab; ++i) rest += i == top ? 0.0 : std::exp(static_cast<double>(x[i]));
    const double m = 0.3 + 0.6 * unit(rng);
    x[top] = static_cast<float>(std::log(m / (1.0 - m) * rest));
  }
  if (shape == "single" || shape == "sparse") x[token(rng)] = 1.0f;  // at least one finite
  return x;
}

struct Filter {
  double temperature;
  int top_k;
  double top_p;
  double min_p;
};

// Off, alone and together; k around the sampler's exact-prefix size (1024); extreme p.
const Filter kFilters[] = {
    {1.0, 0, 0.0, 0.0},    {0.6, 20, 0.95, 0.0},  {1.0, 0, 0.95, 0.0},    {1.0, 0, 0.0, 0.05},
    {0.7, 0, 0.9, 0.1},    {1.3, 2000, 0.0, 0.0}, {1.0, 1500, 0.99, 0.0}, {1.0, 5000, 0.5, 0.01},
    {0.05, 0, 0.8, 0.0},   {2.0, 0, 0.999, 0.0},  {1.0, 0, 0.0, 1.0},     {1.0, 0, 1e-6, 0.0},
    {1.0, 0, 0.5, 0.5},    {1.0, 50, 0.0, 0.0},   {0.3, 0, 0.0, 0.001},   {1.0, 1025, 0.9, 0.0},
    {1.0, 1024, 0.0, 0.0}, {4.0, 3000, 0.0, 0.2}, {1.0, 2, 0.0, 0.0},     {1.0, 0, 0.99999, 0.0},
    {0.9, 0, 0.3, 1e-4},   {1.0, 0, 0.0, 1e-300},
};

std::string Describe(const std::string& shape, int vocab, const Filter& f, double u) {
  char text[200];
  std::snprintf(text, sizeof(text), "%s vocab %d: T %g k %d p %.17g min_p %g, u %.17g",
                shape.c_str(), vocab, f.temperature, f.top_k, f.top_p, f.min_p, u);
  return text;
}

// Whether a row's cumulative sums can meet its targets exactly: equal weights sum to integers,
// which round values of top_p and u hit (the sampler then falls back to its sorted walk).
bool TiesExactly(const std::string& shape) {
  return shape == "ties" || shape == "equal" || shape == "signed";
}

// Random rows × filters × Philox uniforms (and 0 and the largest u below 1).
TEST(SamplingExactTest, RandomRowsAndUniformsDrawTheReferenceToken) {
  std::mt19937_64 rng(7);
  int64_t draws = 0, sorted = 0;  // Philox uniforms on rows without exact ties
  for (int vocab : {1, 2, 7, 100, 1000, 3000, 12000}) {
    for (const char* shape : kShapes) {
      const std::vector<float> x = MakeRow(shape, vocab, rng);
      for (const Filter& f : kFilters) {
        const ReferenceRow ref(x, f.temperature);
        const int uniforms = vocab >= 3000 ? 8 : 16;
        for (int i = 0; i < uniforms + 2; ++i) {
          const double u = i < uniforms ? kernels::SampleUniform(rng(), i)
                                        : (i == uniforms ? 0.0 : 1.0 - 0x1p-53);
          const PathCounts before = Paths();
          ASSERT_EQ(DrawToken(x.data(), vocab, f.temperature, f.top_k, f.top_p, f.min_p, u),
                    ref.Draw(f.top_k, f.top_p, f.min_p, u))
              << Describe(shape, vocab, f, u);
          if (i < uniforms && !TiesExactly(shape)) {
            ++draws;
            sorted += Paths().sorted - before.sorted;
          }
        }
      }
    }
  }
  // The partitioned path drew (almost) all of those: the largest u walks to the end of the
  // kept set, where the partial sums cannot tell the last tokens apart, but a random one
  // falls within their error with probability ~vocab² · 2⁻⁵⁰.
  EXPECT_LE(sorted, draws / 1000) << "of " << draws;
}

// Uniforms within a few ulps of u = C_j / mass, the cumulative sums where the draw moves from
// one token to the next: at a crossing the partial sums cannot tell, and the sampler must fall
// back to the reference's own sums (or get the same token from them).
TEST(SamplingExactTest, UniformsAtCumulativeBoundariesDrawTheReferenceToken) {
  const PathCounts before = Paths();
  std::mt19937_64 rng(11);
  for (int vocab : {5, 1000, 3000, 12000}) {
    for (const char* shape : {"gauss", "peaked", "flat", "near_ties", "ties", "equal", "masked"}) {
      const std::vector<float> x = MakeRow(shape, vocab, rng);
      for (const Filter& f :
           {Filter{1.0, 0, 0.0, 0.0}, Filter{1.0, 0, 0.95, 0.0}, Filter{0.8, 1500, 0.0, 0.0},
            Filter{1.0, 0, 0.0, 0.02}, Filter{0.6, 20, 0.95, 0.0}}) {
        const ReferenceRow ref(x, f.temperature);
        const ReferenceKept kept = ref.Kept(f.top_k, f.top_p, f.min_p);
        std::uniform_int_distribution<int> position(0, kept.len - 1);
        for (int trial = 0; trial < 4; ++trial) {
          const int j = trial == 0 ? kept.len - 1 : position(rng);
          const double exact = ref.Cumulative(j) / kept.mass;
          double u = exact;
          for (int step = 0; step < 4; ++step) u = std::nextafter(u, -1.0);
          for (int step = 0; step < 9; ++step, u = std::nextafter(u, 2.0)) {
            if (!(u >= 0.0 && u < 1.0)) continue;
            ASSERT_EQ(DrawToken(x.data(), vocab, f.temperature, f.top_k, f.top_p, f.min_p, u),
                      ref.Draw(f.top_k, f.top_p, f.min_p, u))
                << Describe(shape, vocab, f, u) << " (boundary " << j << ")";
          }
        }
      }
    }
  }
  EXPECT_GT(Paths().sorted, before.sorted) << "no boundary was close enough to fall back";
}

// top_p · mass placed within a few ulps of a cumulative sum: top-p's ≥ at its boundary, with
// and without top-k (its mass in canonical order) and min-p after it.
TEST(SamplingExactTest, TopPAtCumulativeBoundariesKeepsTheReferenceSet) {
  std::mt19937_64 rng(13);
  for (int vocab : {6, 1000, 4000, 12000}) {
    for (const char* shape : {"gauss", "peaked", "flat", "ties", "equal", "masked"}) {
      const std::vector<float> x = MakeRow(shape, vocab, rng);
      for (const Filter& base : {Filter{1.0, 0, 0.0, 0.0}, Filter{0.7, 1500, 0.0, 0.0},
                                 Filter{1.0, 0, 0.0, 0.01}, Filter{0.6, 20, 0.0, 0.0}}) {
        const ReferenceRow ref(x, base.temperature);
        const ReferenceKept top_k = ref.Kept(base.top_k, 0.0, 0.0);
        std::uniform_int_distribution<int> position(0, top_k.len - 1);
        for (int trial = 0; trial < 3; ++trial) {
          const int j = position(rng);
          double top_p = ref.Cumulative(j) / top_k.mass;
          for (int step = 0; step < 3; ++step) top_p = std::nextafter(top_p, -1.0);
          for (int step = 0; step < 7; ++step, top_p = std::nextafter(top_p, 2.0)) {
            if (!(top_p > 0.0 && top_p < 1.0)) continue;
            for (double u : {kernels::SampleUniform(rng(), 0), 0.0, 1.0 - 0x1p-53}) {
              Filter f = base;
              f.top_p = top_p;
              ASSERT_EQ(DrawToken(x.data(), vocab, f.temperature, f.top_k, f.top_p, f.min_p, u),
                        ref.Draw(f.top_k, f.top_p, f.min_p, u))
                  << Describe(shape, vocab, f, u) << " (boundary " << j << ")";
            }
          }
        }
      }
    }
  }
}

// Exact decisions: all-equal rows have integer cumulative sums, so top_p · vocab and u · vocab
// land exactly on them; top-p keeps the prefix whose sum reaches the target (≥), the draw
// takes the token whose sum exceeds it (>).
TEST(SamplingExactTest, ExactTiesAtTheTopPAndDrawBoundaries) {
  for (int vocab : {4, 8, 2048, 4096}) {
    const std::vector<float> x(vocab, 1.5f);
    const ReferenceRow ref(x, 1.0);
    for (double top_p : {0.25, 0.5, 0.75}) {
      for (double u : {0.0, 0.25, 0.5, 0.75, 1.0 / 3.0, 1.0 - 0x1p-53}) {
        const int32_t token = DrawToken(x.data(), vocab, 1.0, 0, top_p, 0.0, u);
        EXPECT_EQ(token, ref.Draw(0, top_p, 0.0, u)) << vocab << " " << top_p << " " << u;
        // The kept prefix is exactly top_p · vocab tokens, and the draw is floor(u · len).
        EXPECT_EQ(token, static_cast<int32_t>(std::floor(u * (top_p * vocab))))
            << vocab << " " << top_p << " " << u;
      }
    }
  }
}

// The whole SampleCpu call (the uniform of (seed, index), the raw normaliser that a
// temperature-1 draw shares, top-n) against the reference: same token and log-prob bits.
TEST(SamplingExactTest, SampleCpuMatchesTheReference) {
  constexpr int kVocab = 5000, kRows = 8;
  std::mt19937_64 rng(17);
  std::vector<float> logits;
  const char* const shapes[kRows] = {"gauss", "peaked", "flat", "near_ties",
                                     "ties",  "masked", "wide", "signed"};
  for (const char* shape : shapes) {
    const std::vector<float> row = MakeRow(shape, kVocab, rng);
    logits.insert(logits.end(), row.begin(), row.end());
  }
  for (const Filter& f : kFilters) {
    std::vector<float> t(kRows, static_cast<float>(f.temperature)),
        p(kRows, static_cast<float>(f.top_p)), mp(kRows, static_cast<float>(f.min_p)), lp(kRows),
        top_lp(kRows * 3);
    std::vector<int32_t> k(kRows, f.top_k), n(kRows, 3), token(kRows), top_ids(kRows * 3);
    std::vector<uint64_t> seeds(kRows), index(kRows);
    for (int r = 0; r < kRows; ++r) seeds[r] = rng(), index[r] = rng() % 1000;
    kernels::SampleCpu({.logits = logits.data(),
                        .temperature = t.data(),
                        .top_k = k.data(),
                        .top_p = p.data(),
                        .min_p = mp.data(),
                        .seed = seeds.data(),
                        .index = index.data(),
                        .num_logprobs = n.data(),
                        .token = token.data(),
                        .logprob = lp.data(),
                        .top_ids = top_ids.data(),
                        .top_logprobs = top_lp.data(),
                        .rows = kRows,
                        .vocab = kVocab,
                        .max_logprobs = 3});
    for (int r = 0; r < kRows; ++r) {
      const std::vector<float> x(logits.begin() + r * kVocab, logits.begin() + (r + 1) * kVocab);
      const double u = kernels::SampleUniform(seeds[r], index[r]);
      const ReferenceRow ref(x, t[r]);
      EXPECT_EQ(token[r], ref.Draw(k[r], p[r], mp[r], u)) << Describe(shapes[r], kVocab, f, u);
      // log_softmax at temperature 1 with the normaliser summed in id order.
      const float max = *std::max_element(x.begin(), x.end());
      double z = 0.0;
      for (float v : x) z += std::exp(static_cast<double>(v) - max);
      const double log_z = max + std::log(z);
      EXPECT_EQ(lp[r], static_cast<float>(static_cast<double>(x[token[r]]) - log_z));
      for (int j = 0; j < 3; ++j) {
        EXPECT_EQ(top_ids[r * 3 + j], ref.At(j)) << "rank " << j;
      }
    }
  }
}

}  // namespace
}  // namespace rami
