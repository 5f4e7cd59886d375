// Python's arithmetic for rami's Jinja interpreter: + - * / // % ** and unary minus on ints,
// floats, strings and lists. Ints are 64-bit: where Python would grow a big int, the result
// is an InvalidArgument error ("integer overflow"), never a wrapped value or undefined
// behaviour. Strings and lists built here (repetition, concatenation) are charged to the
// render's budget before they are allocated.
#pragma once

#include <cstdint>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "coordinator/chat/jinja_limits.h"
#include "coordinator/chat/jinja_value.h"

namespace rami::jinja {

// a op b for op in + - * / // % ** (`str % args` included).
absl::StatusOr<Value> Arithmetic(absl::string_view op, const Value& a, const Value& b,
                                 RenderBudget* budget);

// -v for an int or float.
absl::StatusOr<Value> Negate(const Value& v);

// |v| for an int or float (the abs filter).
absl::StatusOr<Value> Abs(const Value& v);

}  // namespace rami::jinja
