// Python string formatting for rami's Jinja interpreter: `fmt % args` and str.format. Every
// piece of output is charged to the render's budget before it is appended, so a padding
// width of 10^9 is a ResourceExhausted error, not an allocation.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/chat/jinja_limits.h"
#include "coordinator/chat/jinja_value.h"

namespace rami::jinja {

// Python's "fmt % args" for %s %r %d %i %f.
absl::StatusOr<Value> PercentFormat(const std::string& fmt, const Value& args,
                                    RenderBudget* budget);

// str.format with positional fields ("{}", "{0}"), an optional conversion (!s, !r) and a
// [[fill]align][width] spec; named fields and other spec parts are errors.
absl::StatusOr<Value> StrFormat(const std::string& fmt, const ValueList& args,
                                RenderBudget* budget);

}  // namespace rami::jinja
