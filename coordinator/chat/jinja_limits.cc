// Render limits and budget (see jinja_limits.h).
#include "coordinator/chat/jinja_limits.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace rami::jinja {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

absl::Status Exhausted(const char* what, uint64_t wanted, const char* limit, int64_t value) {
  return absl::ResourceExhaustedError(
      absl::StrCat(what, wanted == kMax ? std::string() : absl::StrCat(" (", wanted, ")"),
                   " exceeds the render limit ", limit, " = ", value));
}

}  // namespace

uint64_t SaturatingAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? kMax : r;
}

uint64_t SaturatingMul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? kMax : r;
}

absl::Status RenderBudget::ChargeString(uint64_t bytes) {
  if (bytes > static_cast<uint64_t>(limits_.max_output_bytes))
    return Exhausted("a string's size in bytes", bytes, "max_output_bytes",
                     limits_.max_output_bytes);
  return ChargeTotal(bytes);
}

absl::Status RenderBudget::ChargeAppend(uint64_t size, uint64_t more) {
  if (SaturatingAdd(size, more) > static_cast<uint64_t>(limits_.max_output_bytes))
    return Exhausted("a string's size in bytes", SaturatingAdd(size, more), "max_output_bytes",
                     limits_.max_output_bytes);
  return ChargeTotal(more);
}

absl::Status RenderBudget::CheckListLength(uint64_t items) const {
  if (items > static_cast<uint64_t>(limits_.max_list_items))
    return Exhausted("a list's length", items, "max_list_items", limits_.max_list_items);
  return absl::OkStatus();
}

absl::Status RenderBudget::ChargeList(uint64_t items) {
  RAMI_RETURN_IF_ERROR(CheckListLength(items));
  return ChargeTotal(SaturatingMul(items, sizeof(Value)));
}

absl::Status RenderBudget::ChargeTotal(uint64_t bytes) {
  const uint64_t total = SaturatingAdd(static_cast<uint64_t>(total_bytes_), bytes);
  if (total > static_cast<uint64_t>(limits_.max_total_bytes))
    return Exhausted("the bytes allocated by this render", kMax, "max_total_bytes",
                     limits_.max_total_bytes);
  total_bytes_ = static_cast<int64_t>(total);
  return absl::OkStatus();
}

absl::Status RenderBudget::ChargeSteps(uint64_t n) {
  if (n > static_cast<uint64_t>(std::max<int64_t>(steps_left_, 0))) {
    steps_left_ = -1;
    return CheckSteps();
  }
  steps_left_ -= static_cast<int64_t>(n);
  return absl::OkStatus();
}

absl::Status RenderBudget::CheckSteps() const {
  if (steps_left_ >= 0) return absl::OkStatus();
  return Exhausted("the work of this render", kMax, "max_steps", limits_.max_steps);
}

absl::StatusOr<std::string> RenderBudget::Str(const Value& v) {
  if (v.is_string()) {
    RAMI_RETURN_IF_ERROR(ChargeString(v.AsString().size()));
    return v.AsString();
  }
  std::string out;
  if (!v.AppendStr(&out, static_cast<size_t>(limits_.max_output_bytes)))
    return Exhausted("a value's text", kMax, "max_output_bytes", limits_.max_output_bytes);
  RAMI_RETURN_IF_ERROR(ChargeString(out.size()));
  return out;
}

absl::StatusOr<std::string> RenderBudget::Repr(const Value& v) {
  std::string out;
  if (!v.AppendRepr(&out, static_cast<size_t>(limits_.max_output_bytes)))
    return Exhausted("a value's text", kMax, "max_output_bytes", limits_.max_output_bytes);
  RAMI_RETURN_IF_ERROR(ChargeString(out.size()));
  return out;
}

absl::StatusOr<ValueList> RenderBudget::Items(const Value& v) {
  RAMI_RETURN_IF_ERROR(ChargeList(static_cast<uint64_t>(std::max<int64_t>(v.Length(), 0))));
  RAMI_RETURN_IF_ERROR(ChargeSteps(static_cast<uint64_t>(std::max<int64_t>(v.Length(), 0))));
  return v.Iterate();
}

absl::StatusOr<bool> RenderBudget::Equal(const Value& a, const Value& b) {
  const bool equal = Value::Equal(a, b, &steps_left_);
  RAMI_RETURN_IF_ERROR(CheckSteps());
  return equal;
}

absl::StatusOr<bool> RenderBudget::Less(const Value& a, const Value& b) {
  auto less = Value::Less(a, b, &steps_left_);
  RAMI_RETURN_IF_ERROR(CheckSteps());
  return less;
}

}  // namespace rami::jinja
