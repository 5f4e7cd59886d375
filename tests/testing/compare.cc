// AllClose: element-wise tolerance, non-finite positions, cosine distance, bitwise mode.
#include "tests/testing/compare.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"

namespace rami::testing {

::testing::AssertionResult AllClose(absl::Span<const float> actual,
                                    absl::Span<const float> expected, const Tolerance& tol,
                                    const std::string& what) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << what << ": size " << actual.size() << " vs expected " << expected.size();
  }
  double dot = 0, norm_a = 0, norm_e = 0, max_err = 0;
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const float a = actual[i];
    const float e = expected[i];
    bool ok;
    if (tol.bitwise) {
      ok = std::memcmp(&a, &e, sizeof(float)) == 0;
    } else if (!std::isfinite(a) || !std::isfinite(e)) {
      ok = (std::isnan(a) && std::isnan(e)) || a == e;  // same Inf, or both NaN
    } else {
      const double err = std::fabs(static_cast<double>(a) - e);
      max_err = std::max(max_err, err);
      ok = err <= tol.atol + tol.rtol * std::fabs(e);
      dot += static_cast<double>(a) * e;
      norm_a += static_cast<double>(a) * a;
      norm_e += static_cast<double>(e) * e;
    }
    if (!ok && bad++ == 0) first_bad = i;
  }
  const double cosine_distance =
      norm_a > 0 && norm_e > 0 ? 1.0 - dot / std::sqrt(norm_a * norm_e) : 0.0;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << absl::StrFormat(
             "%s: %zu of %zu elements out of tolerance (atol %g, rtol %g%s); first at %zu: "
             "actual %.9g expected %.9g; max abs error %.3g, cosine distance %.3g",
             what, bad, actual.size(), tol.atol, tol.rtol, tol.bitwise ? ", bitwise" : "",
             first_bad, actual[first_bad], expected[first_bad], max_err, cosine_distance);
}

}  // namespace rami::testing
