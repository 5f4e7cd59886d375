// Jinja arithmetic (see jinja_arithmetic.h).
#include "coordinator/chat/jinja_arithmetic.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "coordinator/chat/jinja_builtins.h"
#include "coordinator/chat/jinja_format.h"

namespace rami::jinja {
namespace {

absl::Status Overflow(absl::string_view op, int64_t x, int64_t y) {
  return absl::InvalidArgumentError(
      absl::StrCat("integer overflow: ", x, " ", op, " ", y, " does not fit in 64 bits"));
}

// x ** y for y >= 0 by squaring, every product checked.
absl::StatusOr<int64_t> IntPow(int64_t x, int64_t y) {
  int64_t result = 1, base = x;
  for (int64_t e = y; e > 0; e >>= 1) {
    if ((e & 1) && __builtin_mul_overflow(result, base, &result)) return Overflow("**", x, y);
    if (e > 1 && __builtin_mul_overflow(base, base, &base)) return Overflow("**", x, y);
  }
  return result;
}

absl::StatusOr<Value> IntArithmetic(absl::string_view op, int64_t x, int64_t y) {
  int64_t r = 0;
  if (op == "+") {
    if (__builtin_add_overflow(x, y, &r)) return Overflow(op, x, y);
    return Value::Int(r);
  }
  if (op == "-") {
    if (__builtin_sub_overflow(x, y, &r)) return Overflow(op, x, y);
    return Value::Int(r);
  }
  if (op == "*") {
    if (__builtin_mul_overflow(x, y, &r)) return Overflow(op, x, y);
    return Value::Int(r);
  }
  if (y == 0) return absl::InvalidArgumentError("division by zero");
  if (op == "//") {
    // INT64_MIN // -1 is 2^63: the one quotient that overflows (and traps in hardware).
    if (x == std::numeric_limits<int64_t>::min() && y == -1) return Overflow(op, x, y);
    return Value::Int(x / y - ((x % y != 0) && ((x < 0) != (y < 0))));  // floor division
  }
  if (op == "%") {
    if (y == -1) return Value::Int(0);  // x % -1 traps for INT64_MIN in C++; Python gives 0
    int64_t m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) m += y;  // the sign of the divisor, as Python
    return Value::Int(m);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown operator ", op));
}

absl::StatusOr<Value> FloatArithmetic(absl::string_view op, double x, double y) {
  if (op == "+") return Value::Float(x + y);
  if (op == "-") return Value::Float(x - y);
  if (op == "*") return Value::Float(x * y);
  if (y == 0) return absl::InvalidArgumentError("division by zero");
  if (op == "//") return Value::Float(std::floor(x / y));
  if (op == "%") return Value::Float(x - std::floor(x / y) * y);
  return absl::InvalidArgumentError(absl::StrCat("unknown operator ", op));
}

// s * n (or n * s): Python's repetition; n <= 0 gives "".
absl::StatusOr<Value> RepeatString(const std::string& s, int64_t n, RenderBudget* budget) {
  const uint64_t count = n > 0 ? static_cast<uint64_t>(n) : 0;
  RAMI_RETURN_IF_ERROR(budget->ChargeString(SaturatingMul(s.size(), count)));
  std::string out;
  out.reserve(s.size() * count);
  for (uint64_t k = 0; k < count; ++k) out += s;
  return Value::String(std::move(out));
}

absl::StatusOr<Value> RepeatList(const ValueList& items, int64_t n, RenderBudget* budget) {
  const uint64_t count = n > 0 ? static_cast<uint64_t>(n) : 0;
  RAMI_RETURN_IF_ERROR(budget->ChargeList(SaturatingMul(items.size(), count)));
  ValueList out;
  out.reserve(items.size() * count);
  for (uint64_t k = 0; k < count; ++k) out.insert(out.end(), items.begin(), items.end());
  return Value::List(std::move(out));
}

}  // namespace

absl::StatusOr<Value> Arithmetic(absl::string_view op, const Value& a, const Value& b,
                                 RenderBudget* budget) {
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      RAMI_RETURN_IF_ERROR(
          budget->ChargeString(SaturatingAdd(a.AsString().size(), b.AsString().size())));
      return Value::String(a.AsString() + b.AsString());
    }
    if (a.is_list() && b.is_list()) {
      RAMI_RETURN_IF_ERROR(budget->ChargeList(SaturatingAdd(a.AsList().size(), b.AsList().size())));
      ValueList out = a.AsList();
      out.insert(out.end(), b.AsList().begin(), b.AsList().end());
      return Value::List(std::move(out));
    }
  }
  if (op == "*") {
    if (a.is_string() && b.is_int()) return RepeatString(a.AsString(), b.AsInt(), budget);
    if (a.is_int() && b.is_string()) return RepeatString(b.AsString(), a.AsInt(), budget);
    if (a.is_list() && b.is_int()) return RepeatList(a.AsList(), b.AsInt(), budget);
    if (a.is_int() && b.is_list()) return RepeatList(b.AsList(), a.AsInt(), budget);
  }
  if (op == "%" && a.is_string()) return PercentFormat(a.AsString(), b, budget);
  if (!a.is_number() || !b.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported operand type(s) for ", op, ": '",
                                                   a.TypeName(), "' and '", b.TypeName(), "'"));
  }
  const bool floats = a.is_float() || b.is_float();
  if (op == "/") {
    if (b.AsFloat() == 0) return absl::InvalidArgumentError("division by zero");
    return Value::Float(a.AsFloat() / b.AsFloat());
  }
  if (op == "**") {
    if (a.AsFloat() == 0 && b.AsFloat() < 0)
      return absl::InvalidArgumentError("0 cannot be raised to a negative power");
    if (!floats && b.AsInt() >= 0) {
      RAMI_ASSIGN_OR_RETURN(int64_t r, IntPow(a.AsInt(), b.AsInt()));
      return Value::Int(r);
    }
    return Value::Float(std::pow(a.AsFloat(), b.AsFloat()));
  }
  if (floats) return FloatArithmetic(op, a.AsFloat(), b.AsFloat());
  return IntArithmetic(op, a.AsInt(), b.AsInt());
}

absl::StatusOr<Value> Negate(const Value& v) {
  if (v.is_float()) return Value::Float(-v.AsFloat());
  if (v.AsInt() == std::numeric_limits<int64_t>::min())
    return absl::InvalidArgumentError(
        absl::StrCat("integer overflow: -(", v.AsInt(), ") does not fit in 64 bits"));
  return Value::Int(-v.AsInt());
}

absl::StatusOr<Value> Abs(const Value& v) {
  if (v.is_float()) return Value::Float(std::fabs(v.AsFloat()));
  if (v.AsInt() < 0) return Negate(v);
  return Value::Int(v.AsInt());
}

}  // namespace rami::jinja
