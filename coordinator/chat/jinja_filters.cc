// Jinja filters (declared in jinja_builtins.h), as jinja2 defines them. Every string or list
// a filter builds is charged to the render's budget first, from a size computed before the
// allocation (center(10**10) and indent(10**10) fail without allocating).
#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "coordinator/chat/jinja_arithmetic.h"
#include "coordinator/chat/jinja_builtins.h"
#include "coordinator/chat/jinja_strings.h"

namespace rami::jinja {
namespace {

absl::Status TypeError(const std::string& what) { return absl::InvalidArgumentError(what); }

const Value* Kw(const KwArgs& kwargs, const char* key) {
  for (const auto& [k, v] : kwargs) {
    if (k == key) return &v;
  }
  return nullptr;
}

// Positional argument i, else keyword `key`, else `dflt`.
Value Arg(const ValueList& args, const KwArgs& kwargs, size_t i, const char* key,
          Value dflt = Value()) {
  if (i < args.size()) return args[i];
  if (const Value* v = Kw(kwargs, key)) return *v;
  return dflt;
}

absl::StatusOr<Value> Attr(const Value& v, const Value& attribute, RenderBudget* budget) {
  if (attribute.is_undefined()) return v;
  if (attribute.is_int()) return GetItem(v, attribute, budget);
  Value cur = v;
  RAMI_ASSIGN_OR_RETURN(const std::string path, budget->Str(attribute));
  for (const auto& part : absl::StrSplit(path, '.')) cur = GetAttribute(cur, std::string(part));
  return cur;
}

absl::StatusOr<ValueList> SortedItems(ValueList items, bool reverse, const Value& attribute,
                                      RenderBudget* budget) {
  // Keys first (their errors and their work are reported before sorting); the comparisons
  // are metered through steps_left(): once it runs out each compares "not less", the sort
  // finishes quickly and CheckSteps reports the budget.
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (Value& item : items) {
    RAMI_ASSIGN_OR_RETURN(Value key, Attr(item, attribute, budget));
    keyed.emplace_back(std::move(key), std::move(item));
  }
  absl::Status error;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    if (!error.ok()) return false;
    auto less =
        Value::Less(reverse ? b.first : a.first, reverse ? a.first : b.first, budget->steps_left());
    if (!less.ok()) error = less.status();
    return less.ok() && *less;
  });
  RAMI_RETURN_IF_ERROR(error);
  RAMI_RETURN_IF_ERROR(budget->CheckSteps());
  for (size_t k = 0; k < items.size(); ++k) items[k] = std::move(keyed[k].second);
  return items;
}

absl::StatusOr<Value> Escape(const std::string& s, RenderBudget* budget) {
  uint64_t size = s.size();
  for (char c : s) {
    size += c == '&' ? 4 : c == '<' || c == '>' || c == '"' || c == '\'' ? 4 : 0;
  }
  RAMI_RETURN_IF_ERROR(budget->ChargeString(size));
  std::string out;
  out.reserve(size);
  for (char c : s) {
    out += c == '&'    ? "&amp;"
           : c == '<'  ? "&lt;"
           : c == '>'  ? "&gt;"
           : c == '"'  ? "&#34;"
           : c == '\'' ? "&#39;"
                       : std::string(1, c);
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> Center(const Value& in, int64_t width, RenderBudget* budget) {
  const int64_t len = in.Length();
  if (width <= len) return in;
  const int64_t pad = width - len;  // no overflow: len >= 0
  RAMI_RETURN_IF_ERROR(budget->ChargeString(SaturatingAdd(in.AsString().size(), pad)));
  const int64_t left = pad / 2 + (pad % 2 & width % 2);  // Python's rule
  return Value::String(std::string(left, ' ') + in.AsString() + std::string(pad - left, ' '));
}

// jinja2's indent(width=4, first=False): `width` spaces, or the string itself.
absl::StatusOr<Value> Indent(const std::string& s, const Value& width, bool first,
                             RenderBudget* budget) {
  std::string pad;
  if (width.is_string()) {
    pad = width.AsString();
  } else {
    const int64_t n = std::max<int64_t>(width.AsInt(), 0);
    RAMI_RETURN_IF_ERROR(budget->ChargeString(n));
    pad.assign(n, ' ');
  }
  const uint64_t lines = std::count(s.begin(), s.end(), '\n') + (first ? 1 : 0);
  RAMI_RETURN_IF_ERROR(
      budget->ChargeString(SaturatingAdd(s.size(), SaturatingMul(lines, pad.size()))));
  std::string out = first ? pad : "";
  for (char c : s) {
    out += c;
    if (c == '\n') out += pad;
  }
  // jinja2 does not indent blank lines: undo padding after a trailing/blank newline.
  return PyReplace(out, "\n" + pad + "\n", "\n\n", budget);
}

absl::StatusOr<Value> Join(const ValueList& items, const Value& attribute, const Value& sep,
                           RenderBudget* budget) {
  RAMI_ASSIGN_OR_RETURN(const std::string d, budget->Str(sep));
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) {
    RAMI_ASSIGN_OR_RETURN(Value a, Attr(items[k], attribute, budget));
    RAMI_ASSIGN_OR_RETURN(const std::string part, budget->Str(a));
    RAMI_RETURN_IF_ERROR(
        budget->ChargeAppend(out.size(), SaturatingAdd(part.size(), k ? d.size() : 0)));
    if (k > 0) out += d;
    out += part;
  }
  return Value::String(std::move(out));
}

// jinja2's int filter: int(x), else int(float(x)), else the default. Out of int64's range is
// an error (Python would make a big int).
absl::StatusOr<Value> ToInt(const Value& in, const Value& dflt) {
  double d = 0;
  if (in.kind() == Value::Kind::kInt || in.is_bool()) return Value::Int(in.AsInt());
  if (in.is_float()) {
    d = in.AsFloat();
  } else if (in.is_string()) {
    char* end = nullptr;
    d = std::strtod(in.AsString().c_str(), &end);
    if (end == in.AsString().c_str()) return dflt;
  } else {
    return dflt;
  }
  if (!(d > -9223372036854775809.0 && d < 9223372036854775808.0))  // NaN fails both
    return absl::InvalidArgumentError(
        absl::StrCat("integer overflow: int(", PyFloatRepr(d), ") does not fit in 64 bits"));
  return Value::Int(FloatToInt(d));
}

}  // namespace

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& in, const ValueList& args,
                                  const KwArgs& kwargs, RenderBudget* budget) {
  if (name == "default" || name == "d") {
    const bool boolean = Arg(args, kwargs, 1, "boolean", Value::Bool(false)).Truthy();
    if (in.is_undefined() || (boolean && !in.Truthy()))
      return Arg(args, kwargs, 0, "default_value", Value::String(""));
    return in;
  }
  if (name == "safe") return in;
  if (name == "string") {
    RAMI_ASSIGN_OR_RETURN(std::string s, budget->Str(in));
    return Value::String(std::move(s));
  }
  if (name == "tojson") {
    const Value indent = Arg(args, kwargs, 0, "indent");
    RAMI_ASSIGN_OR_RETURN(std::string s, in.ToJson(indent.is_int() ? indent.AsInt() : -1,
                                                   Arg(args, kwargs, 2, "sort_keys").Truthy(),
                                                   budget->limits().max_output_bytes));
    RAMI_RETURN_IF_ERROR(budget->ChargeString(s.size()));
    return Value::String(std::move(s));
  }
  if (name == "length" || name == "count") {
    if (in.Length() < 0)
      return TypeError(absl::StrCat("object of type '", in.TypeName(), "' has no len()"));
    return Value::Int(in.Length());
  }
  if (name == "int") return ToInt(in, Arg(args, kwargs, 0, "default", Value::Int(0)));
  if (name == "float") {
    if (in.is_number()) return Value::Float(in.AsFloat());
    if (in.is_string()) {
      char* end = nullptr;
      const double d = std::strtod(in.AsString().c_str(), &end);
      if (end != in.AsString().c_str()) return Value::Float(d);
    }
    return Arg(args, kwargs, 0, "default", Value::Float(0));
  }
  if (name == "abs") return Abs(in);
  if (name == "round") {
    const int64_t precision = Arg(args, kwargs, 0, "precision", Value::Int(0)).AsInt();
    const double scale = std::pow(10.0, static_cast<double>(precision));
    return Value::Float(std::round(in.AsFloat() * scale) / scale);
  }
  if (in.is_string()) {
    const std::string& s = in.AsString();
    if (name == "center")
      return Center(in, Arg(args, kwargs, 0, "width", Value::Int(80)).AsInt(), budget);
    if (name == "indent") {
      return Indent(s, Arg(args, kwargs, 0, "width", Value::Int(4)),
                    Arg(args, kwargs, 1, "first").Truthy(), budget);
    }
    if (name == "replace") {
      RAMI_ASSIGN_OR_RETURN(const std::string old, budget->Str(Arg(args, kwargs, 0, "old")));
      RAMI_ASSIGN_OR_RETURN(const std::string repl, budget->Str(Arg(args, kwargs, 1, "new")));
      return PyReplace(s, old, repl, budget);
    }
    if (name == "e" || name == "escape") return Escape(s, budget);
    // The rest are no longer than their input.
    RAMI_RETURN_IF_ERROR(budget->ChargeString(s.size()));
    if (name == "trim") return Value::String(PyStrip(s, Arg(args, kwargs, 0, "chars"), true, true));
    if (name == "upper") return Value::String(absl::AsciiStrToUpper(s));
    if (name == "lower") return Value::String(absl::AsciiStrToLower(s));
    if (name == "capitalize") return Value::String(PyCapitalize(s));
    if (name == "title") return Value::String(PyTitle(s));
  }
  if (name == "items") {
    if (in.is_undefined()) return Value::List({});
    if (!in.is_dict()) return TypeError("items filter needs a mapping");
    RAMI_RETURN_IF_ERROR(budget->ChargeList(in.AsDict().items.size()));
    ValueList out;
    for (const auto& [k, v] : in.AsDict().items)
      out.push_back(Value::List({Value::String(k), v}, true));
    return Value::List(std::move(out));
  }
  if (name == "dictsort") {
    if (!in.is_dict()) return TypeError("dictsort needs a mapping");
    RAMI_RETURN_IF_ERROR(budget->ChargeList(in.AsDict().items.size()));
    ValueList out;
    for (const auto& [k, v] : in.AsDict().items)
      out.push_back(Value::List({Value::String(k), v}, true));
    RAMI_ASSIGN_OR_RETURN(out, SortedItems(std::move(out), Arg(args, kwargs, 2, "reverse").Truthy(),
                                           Value::Int(0), budget));
    return Value::List(std::move(out));
  }
  // Everything below works on an iterable.
  RAMI_ASSIGN_OR_RETURN(ValueList items, budget->Items(in));
  if (name == "list") return Value::List(std::move(items));
  if (name == "first") return items.empty() ? Value() : items.front();
  if (name == "last") return items.empty() ? Value() : items.back();
  if (name == "reverse") {
    if (in.is_string()) {
      RAMI_RETURN_IF_ERROR(budget->ChargeString(in.AsString().size()));
      return Value::String(std::string(in.AsString().rbegin(), in.AsString().rend()));
    }
    std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "join") {
    return Join(items, Arg(args, kwargs, 1, "attribute"),
                Arg(args, kwargs, 0, "d", Value::String("")), budget);
  }
  if (name == "sort") {
    RAMI_ASSIGN_OR_RETURN(items,
                          SortedItems(std::move(items), Arg(args, kwargs, 0, "reverse").Truthy(),
                                      Arg(args, kwargs, 2, "attribute"), budget));
    return Value::List(std::move(items));
  }
  if (name == "unique") {
    ValueList out;
    for (const Value& v : items) {
      bool seen = false;
      for (size_t k = 0; k < out.size() && !seen; ++k) {
        RAMI_ASSIGN_OR_RETURN(seen, budget->Equal(out[k], v));
      }
      if (!seen) out.push_back(v);
    }
    return Value::List(std::move(out));
  }
  if (name == "sum") {
    Value total = Arg(args, kwargs, 1, "start", Value::Int(0));
    for (const Value& v : items) {
      if (total.is_string() || v.is_string())
        return TypeError("sum() can't sum strings (use join)");
      RAMI_ASSIGN_OR_RETURN(total, Arithmetic("+", total, v, budget));
    }
    return total;
  }
  if (name == "min" || name == "max") {
    if (items.empty()) return Value();
    Value best = items[0];
    for (const Value& v : items) {
      RAMI_ASSIGN_OR_RETURN(bool less, budget->Less(v, best));
      RAMI_ASSIGN_OR_RETURN(bool more, budget->Less(best, v));
      if (name == "min" ? less : more) best = v;
    }
    return best;
  }
  if (name == "batch") {
    const int64_t n = std::max<int64_t>(1, Arg(args, kwargs, 0, "linecount").AsInt());
    ValueList out, cur;
    for (const Value& v : items) {
      cur.push_back(v);
      if (static_cast<int64_t>(cur.size()) == n) {
        out.push_back(Value::List(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) out.push_back(Value::List(std::move(cur)));
    RAMI_RETURN_IF_ERROR(budget->ChargeList(out.size()));
    return Value::List(std::move(out));
  }
  if (name == "map") {
    ValueList out;
    const Value* attribute = Kw(kwargs, "attribute");
    for (const Value& v : items) {
      if (attribute != nullptr) {
        RAMI_ASSIGN_OR_RETURN(Value a, Attr(v, *attribute, budget));
        if (a.is_undefined()) a = Arg({}, kwargs, 0, "default");
        out.push_back(a);
      } else {
        if (args.empty() || !args[0].is_string())
          return TypeError("map needs a filter name or attribute=");
        const std::string filter = args[0].AsString();
        if (!IsKnownFilter(filter))
          return TypeError(absl::StrCat("unknown filter '", Quote(filter), "'"));
        RAMI_ASSIGN_OR_RETURN(
            Value r, ApplyFilter(filter, v, ValueList(args.begin() + 1, args.end()), {}, budget));
        out.push_back(r);
      }
    }
    return Value::List(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    const bool by_attr = name == "selectattr" || name == "rejectattr";
    const bool keep = name == "select" || name == "selectattr";
    const size_t test_at = by_attr ? 1 : 0;
    ValueList out;
    for (const Value& v : items) {
      Value subject = v;
      if (by_attr) {
        RAMI_ASSIGN_OR_RETURN(subject, Attr(v, Arg(args, kwargs, 0, "attribute"), budget));
      }
      bool ok;
      if (args.size() > test_at) {
        RAMI_ASSIGN_OR_RETURN(const std::string test, budget->Str(args[test_at]));
        if (!IsKnownTest(test)) return TypeError(absl::StrCat("unknown test '", Quote(test), "'"));
        RAMI_ASSIGN_OR_RETURN(
            ok,
            ApplyTest(test, subject, ValueList(args.begin() + test_at + 1, args.end()), budget));
      } else {
        ok = subject.Truthy();
      }
      if (ok == keep) out.push_back(v);
    }
    return Value::List(std::move(out));
  }
  return TypeError(
      absl::StrCat("filter '", Quote(name), "' cannot be applied to a ", in.TypeName()));
}

}  // namespace rami::jinja
