// Jinja built-ins (see jinja_builtins.h): the filter and test names, and the tests. The
// filters are in jinja_filters.cc, the methods in jinja_methods.cc.
#include "coordinator/chat/jinja_builtins.h"

#include <cstdint>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace rami::jinja {
namespace {

absl::Status TypeError(const std::string& what) { return absl::InvalidArgumentError(what); }

}  // namespace

bool IsKnownFilter(const std::string& name) {
  static const std::set<std::string> kFilters = {
      "abs",        "batch",   "capitalize", "center", "count",  "d",      "default",    "dictsort",
      "e",          "escape",  "first",      "float",  "indent", "int",    "items",      "join",
      "last",       "length",  "list",       "lower",  "map",    "max",    "min",        "reject",
      "rejectattr", "replace", "reverse",    "round",  "safe",   "select", "selectattr", "sort",
      "string",     "sum",     "title",      "tojson", "trim",   "unique", "upper"};
  return kFilters.count(name) > 0;
}

bool IsKnownTest(const std::string& name) {
  static const std::set<std::string> kTests = {"boolean", "callable", "defined",   "divisibleby",
                                               "eq",      "equalto",  "even",      "false",
                                               "float",   "ge",       "gt",        "in",
                                               "integer", "iterable", "le",        "lower",
                                               "lt",      "mapping",  "ne",        "none",
                                               "number",  "odd",      "sameas",    "sequence",
                                               "string",  "true",     "undefined", "upper",
                                               "==",      "!=",       "<",         ">"};
  return kTests.count(name) > 0;
}

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, const ValueList& args,
                               RenderBudget* budget) {
  const Value arg = args.empty() ? Value() : args[0];
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "false") return v.is_bool() && !v.AsBool();
  if (name == "true") return v.is_bool() && v.AsBool();
  if (name == "integer") return v.kind() == Value::Kind::kInt;
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "callable") return v.is_callable();
  if (name == "lower") return v.is_string() && absl::AsciiStrToLower(v.AsString()) == v.AsString();
  if (name == "upper") return v.is_string() && absl::AsciiStrToUpper(v.AsString()) == v.AsString();
  if (name == "odd" || name == "even") {
    if (!v.is_int()) return TypeError(absl::StrCat("test '", name, "' needs an integer"));
    return (v.AsInt() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    // x % -1 traps for INT64_MIN; every int is divisible by -1 anyway.
    const int64_t d = arg.AsInt();
    return d == -1 || (d != 0 && v.AsInt() % d == 0);
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas")
    return budget->Equal(v, arg);
  if (name == "ne" || name == "!=") {
    RAMI_ASSIGN_OR_RETURN(bool equal, budget->Equal(v, arg));
    return !equal;
  }
  if (name == "lt" || name == "<") return budget->Less(v, arg);
  if (name == "gt" || name == ">") return budget->Less(arg, v);
  if (name == "le") {
    RAMI_ASSIGN_OR_RETURN(bool gt, budget->Less(arg, v));
    return !gt;
  }
  if (name == "ge") {
    RAMI_ASSIGN_OR_RETURN(bool lt, budget->Less(v, arg));
    return !lt;
  }
  if (name == "in") {
    RAMI_ASSIGN_OR_RETURN(Value r, CallMethod(arg, "__contains__", {v}, {}, budget));
    return r.Truthy();
  }
  return TypeError(absl::StrCat("unknown test '", Quote(name), "'"));
}

}  // namespace rami::jinja
