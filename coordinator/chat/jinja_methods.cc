// Python methods of str / dict / list and attribute, item and slice access for rami's Jinja
// interpreter (declared in jinja_builtins.h). Containers are immutable, as in transformers'
// ImmutableSandboxedEnvironment: list.append and friends are errors.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/status_macros.h"
#include "coordinator/chat/jinja_builtins.h"
#include "coordinator/chat/jinja_strings.h"

namespace rami::jinja {
namespace {

Value Split(const std::string& s, const Value& sep, int64_t maxsplit) {
  ValueList out;
  if (!sep.is_string()) {  // split on runs of whitespace, dropping empties
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && IsPySpace(s[i])) ++i;
      if (i >= s.size()) break;
      size_t j = i;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = s.size();
        while (e > i && IsPySpace(s[e - 1])) --e;
        out.push_back(Value::String(s.substr(i, e - i)));
        break;
      }
      while (j < s.size() && !IsPySpace(s[j])) ++j;
      out.push_back(Value::String(s.substr(i, j - i)));
      i = j;
    }
    return Value::List(std::move(out));
  }
  const std::string& d = sep.AsString();
  size_t start = 0;
  while (true) {
    const size_t at = (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit)
                          ? std::string::npos
                          : s.find(d, start);
    if (at == std::string::npos || d.empty()) {
      out.push_back(Value::String(s.substr(start)));
      break;
    }
    out.push_back(Value::String(s.substr(start, at - start)));
    start = at + d.size();
  }
  return Value::List(std::move(out));
}

bool AffixMatch(const std::string& s, const Value& affix, bool prefix) {
  const ValueList options = affix.is_list() ? affix.AsList() : ValueList{affix};
  for (const Value& o : options) {
    if (!o.is_string()) continue;
    if (prefix ? absl::StartsWith(s, o.AsString()) : absl::EndsWith(s, o.AsString())) return true;
  }
  return false;
}

// str.format with positional "{}" / "{0}" fields.
absl::StatusOr<Value> Format(const std::string& fmt, const ValueList& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    if (fmt[i] == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
      continue;
    }
    if (fmt[i] != '{') {
      out += fmt[i];
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) return absl::InvalidArgumentError("str.format: unmatched '{'");
    const std::string field = fmt.substr(i + 1, close - i - 1);
    const size_t index = field.empty() ? auto_index++ : std::stoul(field);
    if (index >= args.size()) return absl::InvalidArgumentError("str.format: index out of range");
    out += args[index].Str();
    i = close;
  }
  return Value::String(out);
}

}  // namespace

absl::StatusOr<Value> CallMethod(const Value& obj, const std::string& name, const ValueList& args,
                                 const KwArgs& kwargs) {
  const Value a0 = args.empty() ? Value() : args[0];
  const Value a1 = args.size() > 1 ? args[1] : Value();
  if (name == "__contains__") {
    if (obj.is_string())
      return Value::Bool(a0.is_string() && obj.AsString().find(a0.AsString()) != std::string::npos);
    if (obj.is_list())
      return Value::Bool(std::find(obj.AsList().begin(), obj.AsList().end(), a0) !=
                         obj.AsList().end());
    if (obj.is_dict())
      return Value::Bool(a0.is_string() && obj.AsDict().Find(a0.AsString()) != nullptr);
    if (obj.is_undefined()) return Value::Bool(false);
    return absl::InvalidArgumentError(
        absl::StrCat("argument of type '", obj.TypeName(), "' is not iterable"));
  }
  if (obj.is_string()) {
    const std::string& s = obj.AsString();
    if (name == "strip") return Value::String(PyStrip(s, a0, true, true));
    if (name == "lstrip") return Value::String(PyStrip(s, a0, true, false));
    if (name == "rstrip") return Value::String(PyStrip(s, a0, false, true));
    if (name == "split") {
      Value maxsplit = a1;
      for (const auto& [k, v] : kwargs)
        if (k == "maxsplit") maxsplit = v;
      return Split(s, a0, maxsplit.is_int() ? maxsplit.AsInt() : -1);
    }
    if (name == "startswith") return Value::Bool(AffixMatch(s, a0, true));
    if (name == "endswith") return Value::Bool(AffixMatch(s, a0, false));
    if (name == "replace") {
      if (!a0.is_string() || a0.AsString().empty()) return obj;
      return Value::String(absl::StrReplaceAll(s, {{a0.AsString(), a1.Str()}}));
    }
    if (name == "upper") return Value::String(absl::AsciiStrToUpper(s));
    if (name == "lower") return Value::String(absl::AsciiStrToLower(s));
    if (name == "capitalize") return Value::String(PyCapitalize(s));
    if (name == "title") return Value::String(PyTitle(s));
    if (name == "find") {
      const size_t at = s.find(a0.Str());
      return Value::Int(at == std::string::npos ? -1 : static_cast<int64_t>(at));
    }
    if (name == "count") {
      int64_t n = 0;
      const std::string needle = a0.Str();
      for (size_t at = s.find(needle); !needle.empty() && at != std::string::npos;
           at = s.find(needle, at + needle.size()))
        ++n;
      return Value::Int(n);
    }
    if (name == "join") {
      RAMI_ASSIGN_OR_RETURN(ValueList items, a0.Iterate());
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) out += (i ? s : "") + items[i].Str();
      return Value::String(out);
    }
    if (name == "format") return Format(s, args);
    if (name == "isdigit" || name == "isalpha" || name == "isspace" || name == "isalnum") {
      bool ok = !s.empty();
      for (char c : s) {
        ok &= name == "isdigit"   ? absl::ascii_isdigit(c)
              : name == "isalpha" ? absl::ascii_isalpha(c)
              : name == "isspace" ? IsPySpace(c)
                                  : absl::ascii_isalnum(c);
      }
      return Value::Bool(ok);
    }
  }
  if (obj.is_dict() && !obj.is_namespace()) {
    const ValueDict& d = obj.AsDict();
    if (name == "get") {
      const Value* v = a0.is_string() ? d.Find(a0.AsString()) : nullptr;
      return v != nullptr ? *v : (args.size() > 1 ? a1 : Value::None());
    }
    if (name == "items" || name == "keys" || name == "values") {
      ValueList out;
      for (const auto& [k, v] : d.items) {
        if (name == "items")
          out.push_back(Value::List({Value::String(k), v}, true));
        else
          out.push_back(name == "keys" ? Value::String(k) : v);
      }
      return Value::List(std::move(out));
    }
  }
  if (obj.is_list() &&
      (name == "append" || name == "pop" || name == "extend" || name == "insert")) {
    return absl::PermissionDeniedError(
        absl::StrCat("list.", name, " is not allowed: template values are immutable"));
  }
  return absl::NotFoundError(
      absl::StrCat("'", obj.TypeName(), "' object has no method '", name, "'"));
}

Value GetAttribute(const Value& obj, const std::string& name) {
  if (obj.is_dict()) {
    const Value* v = obj.AsDict().Find(name);
    return v != nullptr ? *v : Value();
  }
  return Value();
}

absl::StatusOr<Value> GetItem(const Value& obj, const Value& key) {
  if (obj.is_dict()) return key.is_string() ? GetAttribute(obj, key.AsString()) : Value();
  if (obj.is_list() || obj.is_string()) {
    if (!key.is_int()) return Value();
    ValueList chars;
    if (obj.is_string()) {
      RAMI_ASSIGN_OR_RETURN(chars, obj.Iterate());
    }
    const ValueList& items = obj.is_list() ? obj.AsList() : chars;
    int64_t i = key.AsInt();
    if (i < 0) i += static_cast<int64_t>(items.size());
    if (i < 0 || i >= static_cast<int64_t>(items.size())) return Value();
    return items[i];
  }
  if (obj.is_undefined()) return absl::InvalidArgumentError("cannot index an undefined value");
  return Value();
}

absl::StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop,
                            const Value& step) {
  if (!obj.is_list() && !obj.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", obj.TypeName(), "' object is not subscriptable"));
  }
  RAMI_ASSIGN_OR_RETURN(ValueList items, obj.Iterate());
  const auto n = static_cast<int64_t>(items.size());
  const int64_t st = step.is_int() ? step.AsInt() : 1;
  if (st == 0) return absl::InvalidArgumentError("slice step cannot be zero");
  auto clamp = [n, st](const Value& v, int64_t dflt) {
    if (!v.is_int()) return dflt;
    int64_t i = v.AsInt();
    if (i < 0) i += n;
    return st > 0 ? std::clamp<int64_t>(i, 0, n) : std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t b = clamp(start, st > 0 ? 0 : n - 1), e = clamp(stop, st > 0 ? n : -1);
  ValueList out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(items[i]);
  if (obj.is_string()) {
    std::string s;
    for (const Value& c : out) s += c.AsString();
    return Value::String(s);
  }
  return Value::List(std::move(out));
}

}  // namespace rami::jinja
