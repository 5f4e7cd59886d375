// The CPU twin's row draw for a given uniform, and which of its two paths drew each row: what
// tests (tests/unit/sampling_exact_test.cc) need to compare it with a brute-force reference at
// chosen uniforms, e.g. within a few ulps of a cumulative sum. Not for production callers:
// SampleCpu (kernels/sampling.h) is the interface.
#pragma once

#include <cstdint>

namespace rami::kernels::cpu_sampling {

// The token SampleCpu draws from the row x[vocab] when its uniform is u ∈ [0, 1)
// (kernels/sampling.h: the filters, then the inverse CDF). top_p and min_p are taken as given
// (SampleCpu widens its float parameters), so a test can place top_p · mass anywhere.
// Preconditions: the row has a distribution (no NaN or +Inf, a finite logit), temperature > 0,
// top_k ≥ 0 and ≠ 1, top_p and min_p ∈ [0, 1].
int32_t DrawToken(const float* x, int vocab, double temperature, int top_k, double top_p,
                  double min_p, double u);

// Rows drawn since the process started, all threads together: by partitioning the row
// (expected O(vocab)), or by the lazily sorted walk that the partitioned path falls back to
// when a partial sum lies too close to a decision to certify it
// (kernels/cpu/sampling_partitioned.h).
struct PathCounts {
  int64_t partitioned = 0;
  int64_t sorted = 0;
};
PathCounts Paths();

}  // namespace rami::kernels::cpu_sampling
