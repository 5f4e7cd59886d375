// The value model of rami's Jinja interpreter: Python-like dynamic values (undefined, none,
// bool, int, float, str, list/tuple, dict, namespace, callable). jinja_value.cc gives them
// Python's truthiness, iteration, equality and ordering; jinja_value_format.cc their str(),
// repr() and JSON forms (HF's tojson is json.dumps(ensure_ascii=False)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace rami::jinja {

class Value;
using ValueList = std::vector<Value>;
using KwArgs = std::vector<std::pair<std::string, Value>>;

// Truncates toward zero, saturating at the int64 range; NaN gives 0.
int64_t FloatToInt(double d);

// Insertion-ordered string-keyed map (Python dicts keep insertion order).
struct ValueDict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* Find(const std::string& key) const;
  void Set(const std::string& key, Value value);
};

// A function callable from templates (globals, macros, bound methods).
using Callable = std::function<absl::StatusOr<Value>(const ValueList& args, const KwArgs& kwargs)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kCallable };

  Value() = default;  // undefined
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double d);
  static Value String(std::string s);
  static Value List(ValueList items, bool is_tuple = false);
  static Value Dict(ValueDict dict, bool is_namespace = false);
  static Value Function(Callable fn);
  // Objects keep their key order (ordered_json), as Python dicts do.
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const {
    return kind_ == Kind::kInt || kind_ == Kind::kBool;
  }  // Python: bool is int
  bool is_number() const { return is_int() || kind_ == Kind::kFloat; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && is_tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kDict && is_namespace_; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool AsBool() const { return int_ != 0; }
  // A float is truncated toward zero and saturated to int64 (NaN is 0): never UB.
  int64_t AsInt() const { return kind_ == Kind::kFloat ? FloatToInt(float_) : int_; }
  double AsFloat() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& AsString() const { return *string_; }
  const ValueList& AsList() const { return *list_; }
  const ValueDict& AsDict() const { return *dict_; }
  ValueDict& MutableDict() const { return *dict_; }  // namespaces only (`set ns.x = ...`)
  const Callable& AsCallable() const { return *callable_; }

  // Nesting of lists and dicts: 0 for scalars, 1 + the deepest item for containers. A
  // namespace counts 1 whatever it holds: it is mutable, and traversals stop at it (its repr is
  // "<Namespace>", it compares by identity).
  int depth() const { return depth_; }

  bool Truthy() const;
  std::string Str() const;   // Python str(); undefined renders as ""
  std::string Repr() const;  // Python repr()
  // Str() / Repr() appended to *out; false (with *out cut short) once *out would pass
  // max_bytes, so a huge value costs no more than max_bytes of work.
  bool AppendStr(std::string* out, size_t max_bytes) const;
  bool AppendRepr(std::string* out, size_t max_bytes) const;
  // json.dumps(value, ensure_ascii=False, indent=indent (<0: none), sort_keys); a
  // ResourceExhausted error once the text would pass max_bytes.
  absl::StatusOr<std::string> ToJson(int64_t indent, bool sort_keys,
                                     size_t max_bytes = SIZE_MAX) const;
  std::string TypeName() const;

  // Items to iterate: list items, dict keys, string characters.
  absl::StatusOr<ValueList> Iterate() const;
  int64_t Length() const;  // -1 when the value has no length

  friend bool operator==(const Value& a, const Value& b) { return Equal(a, b, nullptr); }
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }
  // Python ==. Each element compared costs *steps_left one step (and strings one per 256
  // bytes); when it goes negative the answer is false and the caller reports the budget
  // (RenderBudget::CheckSteps). Null: unmetered.
  static bool Equal(const Value& a, const Value& b, int64_t* steps_left);
  // Python ordering for numbers, strings and lists; error for other types. Metered as Equal.
  static absl::StatusOr<bool> Less(const Value& a, const Value& b, int64_t* steps_left = nullptr);

 private:
  Kind kind_ = Kind::kUndefined;
  bool is_tuple_ = false, is_namespace_ = false;
  int depth_ = 0;
  int64_t int_ = 0;
  double float_ = 0;
  std::shared_ptr<const std::string> string_;
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<const Callable> callable_;
};

// Python's repr() of a float ("2.0", "0.1", "1e-09", "1e+16").
std::string PyFloatRepr(double d);
// Python's repr() of a string (quotes chosen as Python does).
std::string PyStringRepr(const std::string& s);

}  // namespace rami::jinja
