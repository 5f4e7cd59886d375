// Jinja values (see jinja_value.h): construction, truthiness, iteration, length, equality
// and ordering. Their text forms (str, repr, JSON) are in jinja_value_format.cc.
#include "coordinator/chat/jinja_value.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace rami::jinja {

int64_t FloatToInt(double d) {
  if (std::isnan(d)) return 0;
  // 2^63 is exact in a double; anything at or past it saturates.
  if (d >= 9223372036854775808.0) return INT64_MAX;
  if (d <= -9223372036854775808.0) return INT64_MIN;
  return static_cast<int64_t>(d);
}

const Value* ValueDict::Find(const std::string& key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void ValueDict::Set(const std::string& key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(key, std::move(value));
}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.int_ = b ? 1 : 0;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.int_ = i;
  return v;
}
Value Value::Float(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.float_ = d;
  return v;
}
Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.string_ = std::make_shared<const std::string>(std::move(s));
  return v;
}
Value Value::List(ValueList items, bool is_tuple) {
  Value v;
  v.kind_ = Kind::kList;
  v.is_tuple_ = is_tuple;
  for (const Value& item : items) v.depth_ = std::max(v.depth_, item.depth_ + 1);
  v.depth_ = std::max(v.depth_, 1);
  v.list_ = std::make_shared<const ValueList>(std::move(items));
  return v;
}
Value Value::Dict(ValueDict dict, bool is_namespace) {
  Value v;
  v.kind_ = Kind::kDict;
  v.is_namespace_ = is_namespace;
  v.depth_ = 1;
  if (!is_namespace) {
    for (const auto& [k, item] : dict.items) v.depth_ = std::max(v.depth_, item.depth_ + 1);
  }
  v.dict_ = std::make_shared<ValueDict>(std::move(dict));
  return v;
}
Value Value::Function(Callable fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.callable_ = std::make_shared<const Callable>(std::move(fn));
  return v;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return int_ != 0;
    case Kind::kFloat:
      return float_ != 0;
    case Kind::kString:
      return !string_->empty();
    case Kind::kList:
      return !list_->empty();
    case Kind::kDict:
      return is_namespace_ || !dict_->items.empty();
    case Kind::kCallable:
      return true;
  }
  return false;
}

std::string Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return is_tuple_ ? "tuple" : "list";
    case Kind::kDict:
      return is_namespace_ ? "Namespace" : "dict";
    case Kind::kCallable:
      return "function";
  }
  return "?";
}

absl::StatusOr<ValueList> Value::Iterate() const {
  switch (kind_) {
    case Kind::kUndefined:
      return ValueList();
    case Kind::kList:
      return *list_;
    case Kind::kDict: {
      ValueList keys;
      for (const auto& [k, v] : dict_->items) keys.push_back(String(k));
      return keys;
    }
    case Kind::kString: {
      ValueList chars;
      const std::string& s = *string_;
      for (size_t i = 0; i < s.size();) {
        size_t n = 1;
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0xF0)
          n = 4;
        else if (c >= 0xE0)
          n = 3;
        else if (c >= 0xC0)
          n = 2;
        chars.push_back(String(s.substr(i, n)));
        i += n;
      }
      return chars;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("'", TypeName(), "' object is not iterable"));
  }
}

int64_t Value::Length() const {
  switch (kind_) {
    case Kind::kString: {
      int64_t n = 0;
      for (unsigned char c : *string_) n += (c & 0xC0) != 0x80;  // code points, as Python
      return n;
    }
    case Kind::kList:
      return static_cast<int64_t>(list_->size());
    case Kind::kDict:
      return static_cast<int64_t>(dict_->items.size());
    case Kind::kUndefined:
      return 0;
    default:
      return -1;
  }
}

namespace {

// Charges one comparison (plus one step per 256 bytes of strings); false once over budget.
bool Charge(int64_t* steps_left, size_t bytes) {
  if (steps_left == nullptr) return true;
  *steps_left -= 1 + static_cast<int64_t>(bytes / 256);
  return *steps_left >= 0;
}

}  // namespace

bool Value::Equal(const Value& a, const Value& b, int64_t* steps_left) {
  if (!Charge(steps_left, 0)) return false;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.AsFloat() == b.AsFloat();
    return a.AsInt() == b.AsInt();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return Charge(steps_left, a.AsString().size()) && a.AsString() == b.AsString();
    case Kind::kList: {
      if (a.list_ == b.list_) return true;  // Python's identity shortcut, here for lists too
      const ValueList& x = a.AsList();
      const ValueList& y = b.AsList();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equal(x[i], y[i], steps_left)) return false;
      }
      return true;
    }
    case Kind::kDict: {
      // Namespaces compare by identity, as Python objects without __eq__ do; this also
      // keeps a namespace that holds itself (`set ns.me = ns`) from recursing forever.
      if (a.is_namespace() || b.is_namespace() || a.dict_ == b.dict_) return a.dict_ == b.dict_;
      if (a.AsDict().items.size() != b.AsDict().items.size()) return false;
      for (const auto& [k, v] : a.AsDict().items) {
        const Value* other = b.AsDict().Find(k);
        if (other == nullptr || !Equal(*other, v, steps_left)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

absl::StatusOr<bool> Value::Less(const Value& a, const Value& b, int64_t* steps_left) {
  if (!Charge(steps_left, 0)) return false;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.AsFloat() < b.AsFloat();
    return a.AsInt() < b.AsInt();
  }
  if (a.is_string() && b.is_string()) {
    return Charge(steps_left, a.AsString().size()) && a.AsString() < b.AsString();
  }
  if (a.is_list() && b.is_list()) {
    const auto& x = a.AsList();
    const auto& y = b.AsList();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!Equal(x[i], y[i], steps_left)) return Less(x[i], y[i], steps_left);
    }
    return x.size() < y.size();
  }
  return absl::InvalidArgumentError(absl::StrCat("'<' not supported between instances of '",
                                                 a.TypeName(), "' and '", b.TypeName(), "'"));
}

}  // namespace rami::jinja
