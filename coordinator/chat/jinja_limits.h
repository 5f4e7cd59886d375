// The bounds of rami's Jinja interpreter: the parser's nesting limit, RenderLimits (what one
// render may produce and spend) and RenderBudget, the per-render meter every allocation and
// loop checks before it runs. A chat template comes with the model and its variables from
// clients; neither may crash the coordinator, hang it or make it allocate without bound.
#pragma once

#include "base/quote.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/chat/jinja_value.h"

namespace rami::jinja {

// Parser recursion and syntax-tree depth: brackets, parentheses, unary operators, operator
// chains (`a ~ b ~ c` is a tree as deep as it is long), filters, attribute chains and nested
// {% tags %} all count. The golden templates need under 20; jinja2 itself fails near 1000
// (Python's recursion limit). Bounding the tree bounds evaluation and destruction recursion.
constexpr int kMaxParseDepth = 200;

struct RenderLimits {
  // The rendered text, and any one string value on the way (a prompt never needs more).
  int64_t max_output_bytes = 8 << 20;
  // Any one list: range(), list * n, list + list, a string's characters.
  int64_t max_list_items = 1 << 20;
  // All string bytes and list items (sizeof(Value), 88 bytes, each) created during the render:
  // bounds the memory a render holds, whatever mix of values it builds.
  int64_t max_total_bytes = 256 << 20;
  // Iterations of all {% for %} loops together (chat templates loop over messages).
  int64_t max_loop_iterations = 1'000'000;
  // Statements, expression nodes, loop iterations and per-element work of filters, methods
  // and comparisons: bounds the time a render takes (~1 s at this default).
  int64_t max_steps = 20'000'000;
  // Nested evaluation (expressions inside macro calls inside loops...) and nested values.
  int max_depth = 256;
};

// One render's meter over RenderLimits. Each Charge* call happens before the allocation or
// loop it pays for, and fails with ResourceExhausted naming the limit once it is exceeded.
class RenderBudget {
 public:
  explicit RenderBudget(const RenderLimits& limits) : limits_(limits) {}

  const RenderLimits& limits() const { return limits_; }

  // A string of `bytes` (saturating arithmetic: callers pass sums and products unchecked
  // through SaturatingAdd / SaturatingMul).
  absl::Status ChargeString(uint64_t bytes);
  // `more` bytes appended to a string of `size` bytes.
  absl::Status ChargeAppend(uint64_t size, uint64_t more);
  // A list of `items` elements.
  absl::Status ChargeList(uint64_t items);
  // Only checks a list's length (for a list built item by item, charged once at the end).
  absl::Status CheckListLength(uint64_t items) const;
  // `n` units of work.
  absl::Status ChargeSteps(uint64_t n);
  // Work charged through steps_left() by code that cannot return a status mid-way
  // (comparisons inside std::sort, Value equality): fails once the budget went negative.
  absl::Status CheckSteps() const;
  int64_t* steps_left() { return &steps_left_; }

  // Python str(v), charged as a new string: a list repeating a huge value fails after
  // max_output_bytes of work instead of building its whole text.
  absl::StatusOr<std::string> Str(const Value& v);
  absl::StatusOr<std::string> Repr(const Value& v);
  // v.Iterate(), charged as a list of v's length (a string's characters are new values).
  absl::StatusOr<ValueList> Items(const Value& v);
  // Python == and <, each element compared costing a step.
  absl::StatusOr<bool> Equal(const Value& a, const Value& b);
  absl::StatusOr<bool> Less(const Value& a, const Value& b);

 private:
  absl::Status ChargeTotal(uint64_t bytes);

  RenderLimits limits_;
  int64_t total_bytes_ = 0;
  int64_t steps_left_ = limits_.max_steps;
};

uint64_t SaturatingAdd(uint64_t a, uint64_t b);
uint64_t SaturatingMul(uint64_t a, uint64_t b);

// Client text (template source, variable values) quoted in an error message: base/quote.h.
using ::rami::kMaxQuotedBytes;
using ::rami::Quote;

}  // namespace rami::jinja
