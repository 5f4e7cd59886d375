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
#include "coordinator/chat/jinja_format.h"
#include "coordinator/chat/jinja_strings.h"

namespace rami::jinja {
namespace {

// str.split; the parts are counted against max_list_items as they are made.
absl::StatusOr<Value> Split(const std::string& s, const Value& sep, int64_t maxsplit,
                            RenderBudget* budget) {
  RAMI_RETURN_IF_ERROR(budget->ChargeString(s.size()));
  RAMI_RETURN_IF_ERROR(budget->ChargeSteps(s.size() / 64));
  ValueList out;
  auto check = [&]() { return budget->CheckListLength(out.size() + 1); };
  if (!sep.is_string()) {  // split on runs of whitespace, dropping empties
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && IsPySpace(s[i])) ++i;
      if (i >= s.size()) break;
      size_t j = i;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = s.size();
        while (e > i && IsPySpace(s[e - 1])) --e;
        RAMI_RETURN_IF_ERROR(check());
        out.push_back(Value::String(s.substr(i, e - i)));
        break;
      }
      while (j < s.size() && !IsPySpace(s[j])) ++j;
      RAMI_RETURN_IF_ERROR(check());
      out.push_back(Value::String(s.substr(i, j - i)));
      i = j;
    }
    RAMI_RETURN_IF_ERROR(budget->ChargeList(out.size()));
    return Value::List(std::move(out));
  }
  const std::string& d = sep.AsString();
  size_t start = 0;
  while (true) {
    const size_t at = (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit)
                          ? std::string::npos
                          : FindIn(s, d, start);
    RAMI_RETURN_IF_ERROR(check());
    if (at == std::string::npos || d.empty()) {
      out.push_back(Value::String(s.substr(start)));
      break;
    }
    out.push_back(Value::String(s.substr(start, at - start)));
    start = at + d.size();
  }
  RAMI_RETURN_IF_ERROR(budget->ChargeList(out.size()));
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

}  // namespace

absl::StatusOr<Value> CallMethod(const Value& obj, const std::string& name, const ValueList& args,
                                 const KwArgs& kwargs, RenderBudget* budget) {
  const Value a0 = args.empty() ? Value() : args[0];
  const Value a1 = args.size() > 1 ? args[1] : Value();
  if (name == "__contains__") {
    if (obj.is_string()) {
      RAMI_RETURN_IF_ERROR(budget->ChargeSteps(obj.AsString().size() / 64));
      return Value::Bool(a0.is_string() &&
                         FindIn(obj.AsString(), a0.AsString()) != std::string::npos);
    }
    if (obj.is_list()) {
      for (const Value& item : obj.AsList()) {
        RAMI_ASSIGN_OR_RETURN(bool equal, budget->Equal(item, a0));
        if (equal) return Value::Bool(true);
      }
      return Value::Bool(false);
    }
    if (obj.is_dict())
      return Value::Bool(a0.is_string() && obj.AsDict().Find(a0.AsString()) != nullptr);
    if (obj.is_undefined()) return Value::Bool(false);
    return absl::InvalidArgumentError(
        absl::StrCat("argument of type '", obj.TypeName(), "' is not iterable"));
  }
  if (obj.is_string()) {
    const std::string& s = obj.AsString();
    RAMI_RETURN_IF_ERROR(budget->ChargeSteps(s.size() / 64));
    if (name == "split") {
      Value maxsplit = a1;
      for (const auto& [k, v] : kwargs)
        if (k == "maxsplit") maxsplit = v;
      return Split(s, a0, maxsplit.is_int() ? maxsplit.AsInt() : -1, budget);
    }
    if (name == "replace") {
      if (!a0.is_string() || a0.AsString().empty()) return obj;
      RAMI_ASSIGN_OR_RETURN(const std::string repl, budget->Str(a1));
      return PyReplace(s, a0.AsString(), repl, budget);
    }
    if (name == "join") {
      RAMI_ASSIGN_OR_RETURN(ValueList items, budget->Items(a0));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        RAMI_ASSIGN_OR_RETURN(const std::string part, budget->Str(items[i]));
        RAMI_RETURN_IF_ERROR(
            budget->ChargeAppend(out.size(), SaturatingAdd(part.size(), i ? s.size() : 0)));
        if (i > 0) out += s;
        out += part;
      }
      return Value::String(std::move(out));
    }
    if (name == "format") return StrFormat(s, args, budget);
    if (name == "find" || name == "count") {
      RAMI_ASSIGN_OR_RETURN(const std::string needle, budget->Str(a0));
      if (name == "find") {
        const size_t at = FindIn(s, needle);
        return Value::Int(at == std::string::npos ? -1 : static_cast<int64_t>(at));
      }
      int64_t n = 0;
      for (size_t at = FindIn(s, needle); !needle.empty() && at != std::string::npos;
           at = FindIn(s, needle, at + needle.size()))
        ++n;
      return Value::Int(n);
    }
    // The rest make strings no longer than s.
    RAMI_RETURN_IF_ERROR(budget->ChargeString(s.size()));
    if (name == "strip") return Value::String(PyStrip(s, a0, true, true));
    if (name == "lstrip") return Value::String(PyStrip(s, a0, true, false));
    if (name == "rstrip") return Value::String(PyStrip(s, a0, false, true));
    if (name == "startswith") return Value::Bool(AffixMatch(s, a0, true));
    if (name == "endswith") return Value::Bool(AffixMatch(s, a0, false));
    if (name == "upper") return Value::String(absl::AsciiStrToUpper(s));
    if (name == "lower") return Value::String(absl::AsciiStrToLower(s));
    if (name == "capitalize") return Value::String(PyCapitalize(s));
    if (name == "title") return Value::String(PyTitle(s));
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
      RAMI_RETURN_IF_ERROR(budget->ChargeList(d.items.size()));
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
        absl::StrCat("list.", Quote(name), " is not allowed: template values are immutable"));
  }
  return absl::NotFoundError(
      absl::StrCat("'", obj.TypeName(), "' object has no method '", Quote(name), "'"));
}

Value GetAttribute(const Value& obj, const std::string& name) {
  if (obj.is_dict()) {
    const Value* v = obj.AsDict().Find(name);
    return v != nullptr ? *v : Value();
  }
  return Value();
}

absl::StatusOr<Value> GetItem(const Value& obj, const Value& key, RenderBudget* budget) {
  if (obj.is_dict()) return key.is_string() ? GetAttribute(obj, key.AsString()) : Value();
  if (obj.is_list() || obj.is_string()) {
    if (!key.is_int()) return Value();
    const int64_t n = obj.Length();  // code points of a string, as Python indexes them
    int64_t i = key.AsInt();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value();
    if (obj.is_list()) return obj.AsList()[i];
    // The i-th code point, found by walking the string (no list of characters).
    const std::string& s = obj.AsString();
    RAMI_RETURN_IF_ERROR(budget->ChargeSteps(s.size() / 64));
    size_t at = 0;
    for (int64_t k = 0; k <= i; ++at) {
      if ((static_cast<unsigned char>(s[at]) & 0xC0) != 0x80 && k++ == i) break;
    }
    size_t end = at + 1;
    while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) ++end;
    return Value::String(s.substr(at, end - at));
  }
  if (obj.is_undefined()) return absl::InvalidArgumentError("cannot index an undefined value");
  return Value();
}

absl::StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop,
                            const Value& step, RenderBudget* budget) {
  if (!obj.is_list() && !obj.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", obj.TypeName(), "' object is not subscriptable"));
  }
  RAMI_ASSIGN_OR_RETURN(ValueList items, budget->Items(obj));
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
  // i + st may overflow for a huge step: stop there (the next index is out of range anyway).
  for (int64_t i = b; st > 0 ? i < e : i > e;) {
    out.push_back(items[i]);
    if (__builtin_add_overflow(i, st, &i)) break;
  }
  if (obj.is_string()) {
    std::string s;
    for (const Value& c : out) s += c.AsString();
    return Value::String(std::move(s));
  }
  return Value::List(std::move(out));
}

}  // namespace rami::jinja
