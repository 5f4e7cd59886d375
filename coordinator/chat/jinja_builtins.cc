// Jinja built-ins (see jinja_builtins.h).
#include "coordinator/chat/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
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

absl::StatusOr<Value> Attr(const Value& v, const Value& attribute) {
  if (attribute.is_undefined()) return v;
  if (attribute.is_int()) return GetItem(v, attribute);
  Value cur = v;
  for (const auto& part : absl::StrSplit(attribute.Str(), '.'))
    cur = GetAttribute(cur, std::string(part));
  return cur;
}

absl::StatusOr<ValueList> SortedItems(ValueList items, bool reverse, const Value& attribute) {
  absl::Status error;
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    auto ka = Attr(a, attribute), kb = Attr(b, attribute);
    if (!ka.ok() || !kb.ok()) return false;
    auto less = Value::Less(reverse ? *kb : *ka, reverse ? *ka : *kb);
    if (!less.ok()) error = less.status();
    return less.ok() && *less;
  });
  RAMI_RETURN_IF_ERROR(error);
  return items;
}

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

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, const ValueList& args) {
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
  if (name == "divisibleby") return arg.AsInt() != 0 && v.AsInt() % arg.AsInt() == 0;
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") return v == arg;
  if (name == "ne" || name == "!=") return v != arg;
  if (name == "lt" || name == "<") return Value::Less(v, arg);
  if (name == "gt" || name == ">") return Value::Less(arg, v);
  if (name == "le") {
    RAMI_ASSIGN_OR_RETURN(bool gt, Value::Less(arg, v));
    return !gt;
  }
  if (name == "ge") {
    RAMI_ASSIGN_OR_RETURN(bool lt, Value::Less(v, arg));
    return !lt;
  }
  if (name == "in") {
    RAMI_ASSIGN_OR_RETURN(Value r, CallMethod(arg, "__contains__", {v}, {}));
    return r.Truthy();
  }
  return TypeError(absl::StrCat("unknown test '", name, "'"));
}

// Python's "%" string formatting for %s %d %r %f (chat templates rarely go further).
absl::StatusOr<Value> PercentFormat(const std::string& fmt, const Value& args) {
  ValueList values = args.is_tuple() ? args.AsList() : ValueList{args};
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      out += fmt[i];
      continue;
    }
    const char spec = fmt[++i];
    if (spec == '%') {
      out += '%';
      continue;
    }
    if (next >= values.size()) return TypeError("not enough arguments for format string");
    const Value& v = values[next++];
    if (spec == 's')
      out += v.Str();
    else if (spec == 'r')
      out += v.Repr();
    else if (spec == 'd' || spec == 'i')
      out += absl::StrCat(v.AsInt());
    else if (spec == 'f')
      out += absl::StrFormat("%f", v.AsFloat());
    else
      return TypeError(absl::StrCat("unsupported format character '", std::string(1, spec), "'"));
  }
  return Value::String(out);
}

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& in, const ValueList& args,
                                  const KwArgs& kwargs) {
  if (name == "default" || name == "d") {
    const bool boolean = Arg(args, kwargs, 1, "boolean", Value::Bool(false)).Truthy();
    if (in.is_undefined() || (boolean && !in.Truthy()))
      return Arg(args, kwargs, 0, "default_value", Value::String(""));
    return in;
  }
  if (name == "safe") return in;
  if (name == "string") return Value::String(in.Str());
  if (name == "tojson") {
    const Value indent = Arg(args, kwargs, 0, "indent");
    RAMI_ASSIGN_OR_RETURN(std::string s,
                          in.ToJson(indent.is_int() ? static_cast<int>(indent.AsInt()) : -1,
                                    Arg(args, kwargs, 2, "sort_keys").Truthy()));
    return Value::String(s);
  }
  if (name == "length" || name == "count") {
    if (in.Length() < 0)
      return TypeError(absl::StrCat("object of type '", in.TypeName(), "' has no len()"));
    return Value::Int(in.Length());
  }
  if (name == "int") {
    if (in.is_number()) return Value::Int(in.AsInt());
    if (in.is_string()) {
      char* end = nullptr;
      const double d = std::strtod(in.AsString().c_str(), &end);
      if (end != in.AsString().c_str()) return Value::Int(static_cast<int64_t>(d));
    }
    return Arg(args, kwargs, 0, "default", Value::Int(0));
  }
  if (name == "float") {
    if (in.is_number()) return Value::Float(in.AsFloat());
    if (in.is_string()) {
      char* end = nullptr;
      const double d = std::strtod(in.AsString().c_str(), &end);
      if (end != in.AsString().c_str()) return Value::Float(d);
    }
    return Arg(args, kwargs, 0, "default", Value::Float(0));
  }
  if (name == "abs")
    return in.is_float() ? Value::Float(std::fabs(in.AsFloat()))
                         : Value::Int(std::llabs(in.AsInt()));
  if (name == "round") {
    const int64_t precision = Arg(args, kwargs, 0, "precision", Value::Int(0)).AsInt();
    const double scale = std::pow(10.0, static_cast<double>(precision));
    return Value::Float(std::round(in.AsFloat() * scale) / scale);
  }
  if (in.is_string()) {
    const std::string& s = in.AsString();
    if (name == "trim") return Value::String(PyStrip(s, Arg(args, kwargs, 0, "chars"), true, true));
    if (name == "upper") return Value::String(absl::AsciiStrToUpper(s));
    if (name == "lower") return Value::String(absl::AsciiStrToLower(s));
    if (name == "capitalize") return Value::String(PyCapitalize(s));
    if (name == "title") return Value::String(PyTitle(s));
    if (name == "replace") {
      return Value::String(absl::StrReplaceAll(
          s, {{Arg(args, kwargs, 0, "old").Str(), Arg(args, kwargs, 1, "new").Str()}}));
    }
    if (name == "e" || name == "escape") {
      return Value::String(absl::StrReplaceAll(
          s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&#34;"}, {"'", "&#39;"}}));
    }
    if (name == "center") {
      const int64_t width = Arg(args, kwargs, 0, "width", Value::Int(80)).AsInt();
      const int64_t len = in.Length();
      if (width <= len) return in;
      const int64_t left = (width - len) / 2 + ((width - len) % 2 & width % 2);  // Python's rule
      return Value::String(std::string(left, ' ') + s + std::string(width - len - left, ' '));
    }
    if (name == "indent") {
      const std::string pad(Arg(args, kwargs, 0, "width", Value::Int(4)).AsInt(), ' ');
      const bool first = Arg(args, kwargs, 1, "first").Truthy();
      std::string out = first ? pad : "";
      for (char c : s) {
        out += c;
        if (c == '\n') out += pad;
      }
      // jinja2 does not indent blank lines: undo padding after a trailing/blank newline.
      return Value::String(absl::StrReplaceAll(out, {{"\n" + pad + "\n", "\n\n"}}));
    }
  }
  if (name == "items") {
    if (in.is_undefined()) return Value::List({});
    if (!in.is_dict()) return TypeError("items filter needs a mapping");
    ValueList out;
    for (const auto& [k, v] : in.AsDict().items)
      out.push_back(Value::List({Value::String(k), v}, true));
    return Value::List(std::move(out));
  }
  if (name == "dictsort") {
    if (!in.is_dict()) return TypeError("dictsort needs a mapping");
    ValueList out;
    for (const auto& [k, v] : in.AsDict().items)
      out.push_back(Value::List({Value::String(k), v}, true));
    RAMI_ASSIGN_OR_RETURN(
        out, SortedItems(std::move(out), Arg(args, kwargs, 2, "reverse").Truthy(), Value::Int(0)));
    return Value::List(std::move(out));
  }
  // Everything below works on an iterable.
  RAMI_ASSIGN_OR_RETURN(ValueList items, in.Iterate());
  if (name == "list") return Value::List(std::move(items));
  if (name == "first") return items.empty() ? Value() : items.front();
  if (name == "last") return items.empty() ? Value() : items.back();
  if (name == "reverse") {
    if (in.is_string())
      return Value::String(std::string(in.AsString().rbegin(), in.AsString().rend()));
    std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "join") {
    const Value attribute = Arg(args, kwargs, 1, "attribute");
    std::vector<std::string> parts;
    for (const Value& v : items) {
      RAMI_ASSIGN_OR_RETURN(Value a, Attr(v, attribute));
      parts.push_back(a.Str());
    }
    return Value::String(absl::StrJoin(parts, Arg(args, kwargs, 0, "d", Value::String("")).Str()));
  }
  if (name == "sort") {
    RAMI_ASSIGN_OR_RETURN(items,
                          SortedItems(std::move(items), Arg(args, kwargs, 0, "reverse").Truthy(),
                                      Arg(args, kwargs, 2, "attribute")));
    return Value::List(std::move(items));
  }
  if (name == "unique") {
    ValueList out;
    for (const Value& v : items) {
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    }
    return Value::List(std::move(out));
  }
  if (name == "sum") {
    Value total = Arg(args, kwargs, 1, "start", Value::Int(0));
    for (const Value& v : items) {
      total = total.is_float() || v.is_float() ? Value::Float(total.AsFloat() + v.AsFloat())
                                               : Value::Int(total.AsInt() + v.AsInt());
    }
    return total;
  }
  if (name == "min" || name == "max") {
    if (items.empty()) return Value();
    Value best = items[0];
    for (const Value& v : items) {
      RAMI_ASSIGN_OR_RETURN(bool less, Value::Less(v, best));
      RAMI_ASSIGN_OR_RETURN(bool more, Value::Less(best, v));
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
    return Value::List(std::move(out));
  }
  if (name == "map") {
    ValueList out;
    const Value* attribute = Kw(kwargs, "attribute");
    for (const Value& v : items) {
      if (attribute != nullptr) {
        RAMI_ASSIGN_OR_RETURN(Value a, Attr(v, *attribute));
        if (a.is_undefined()) a = Arg({}, kwargs, 0, "default");
        out.push_back(a);
      } else {
        if (args.empty() || !args[0].is_string())
          return TypeError("map needs a filter name or attribute=");
        const std::string filter = args[0].AsString();
        if (!IsKnownFilter(filter)) return TypeError(absl::StrCat("unknown filter '", filter, "'"));
        RAMI_ASSIGN_OR_RETURN(Value r,
                              ApplyFilter(filter, v, ValueList(args.begin() + 1, args.end()), {}));
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
        RAMI_ASSIGN_OR_RETURN(subject, Attr(v, Arg(args, kwargs, 0, "attribute")));
      }
      bool ok;
      if (args.size() > test_at) {
        const std::string test = args[test_at].Str();
        if (!IsKnownTest(test)) return TypeError(absl::StrCat("unknown test '", test, "'"));
        RAMI_ASSIGN_OR_RETURN(
            ok, ApplyTest(test, subject, ValueList(args.begin() + test_at + 1, args.end())));
      } else {
        ok = subject.Truthy();
      }
      if (ok == keep) out.push_back(v);
    }
    return Value::List(std::move(out));
  }
  return TypeError(absl::StrCat("filter '", name, "' cannot be applied to a ", in.TypeName()));
}

}  // namespace rami::jinja
