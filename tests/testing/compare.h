// The one comparator of the test suite (one tolerance rule for every test): every element within atol + rtol·|ref|,
// NaN and Inf at the same positions, the cosine distance reported; or bitwise equality for
// determinism tests. Returns a gtest AssertionResult naming the first offending element.
#pragma once

#include <string>

#include "absl/types/span.h"
#include "gtest/gtest.h"

namespace rami::testing {

struct Tolerance {
  double atol = 0.0;
  double rtol = 0.0;
  bool bitwise = false;  // exact bit patterns (NaN payloads included)
};

::testing::AssertionResult AllClose(absl::Span<const float> actual,
                                    absl::Span<const float> expected, const Tolerance& tol,
                                    const std::string& what = "");

}  // namespace rami::testing
