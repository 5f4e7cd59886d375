// CPU twin of token sampling (semantics in kernels/sampling.h): per row the scan, the draw
// (kernels/cpu/sampling_partitioned.h, falling back to the reference walk of sampling_order.h)
// and the raw log-probs. Weights and sums are in double.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/sampling_internal.h"
#include "kernels/cpu/sampling_order.h"
#include "kernels/cpu/sampling_partitioned.h"
#include "kernels/sampling.h"

namespace rami::kernels {
namespace {

using cpu_sampling::FirstKeys;
using cpu_sampling::IdOf;
using cpu_sampling::RowSampler;
using cpu_sampling::RowScan;
using cpu_sampling::ScanRow;

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
