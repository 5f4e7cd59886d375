// Built-in filters, tests and Python methods (str, dict, list) of rami's Jinja interpreter:
// the subset chat templates use, each behaving as in jinja2 / Python. Names are checked at
// parse time so an unknown filter is a load error. Each takes the render's budget: what they
// allocate is charged before it is allocated, and their loops cost steps.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/chat/jinja_limits.h"
#include "coordinator/chat/jinja_value.h"

namespace rami::jinja {

bool IsKnownFilter(const std::string& name);
bool IsKnownTest(const std::string& name);

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input,
                                  const ValueList& args, const KwArgs& kwargs,
                                  RenderBudget* budget);
absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& value, const ValueList& args,
                               RenderBudget* budget);

// obj.name(args) for Python methods of str, dict and list; NotFound when there is none.
absl::StatusOr<Value> CallMethod(const Value& obj, const std::string& name, const ValueList& args,
                                 const KwArgs& kwargs, RenderBudget* budget);

// Attribute or item lookup, as jinja2's getattr / getitem (Undefined when missing).
Value GetAttribute(const Value& obj, const std::string& name);
absl::StatusOr<Value> GetItem(const Value& obj, const Value& key, RenderBudget* budget);
absl::StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop,
                            const Value& step, RenderBudget* budget);

}  // namespace rami::jinja
