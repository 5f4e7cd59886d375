// Text forms of Jinja values (declared in jinja_value.h): Python's str() and repr(), and JSON
// both ways: FromJson for the request's messages/tools (ordered_json, so dicts keep the
// client's key order) and ToJson for HF's tojson filter (json.dumps(ensure_ascii=False)).
#include "coordinator/chat/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace rami::jinja {

Value Value::FromJson(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return None();
    case nlohmann::ordered_json::value_t::boolean:
      return Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_float:
      return Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return String(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      for (const auto& e : j) items.push_back(FromJson(e));
      return List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      ValueDict d;
      for (const auto& [k, e] : j.items()) d.items.emplace_back(k, FromJson(e));
      return Dict(std::move(d));
    }
    default:
      return Value();
  }
}

std::string PyFloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[40];
  int precision = 1;
  for (; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*e", precision - 1, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  // buf = "-d.ddde[+-]xx": split digits and exponent.
  std::string s(buf);
  const size_t e = s.find('e');
  const int exp = std::atoi(s.c_str() + e + 1);
  std::string sign = s[0] == '-' ? "-" : "";
  std::string digits;
  for (size_t i = sign.size(); i < e; ++i) {
    if (s[i] != '.') digits.push_back(s[i]);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  if (exp >= -4 && exp < 16) {  // Python switches to exponent form outside this range
    std::string out;
    if (exp < 0) {
      out = "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out = digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
    return sign + out;
  }
  std::string mantissa = digits.substr(0, 1);
  if (digits.size() > 1) mantissa += "." + digits.substr(1);
  return absl::StrFormat("%s%se%c%02d", sign, mantissa, exp < 0 ? '-' : '+', std::abs(exp));
}

std::string PyStringRepr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == quote) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\x%02x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += quote;
  return out;
}

std::string Value::Str() const {
  std::string out;
  AppendStr(&out, SIZE_MAX);
  return out;
}

std::string Value::Repr() const {
  std::string out;
  AppendRepr(&out, SIZE_MAX);
  return out;
}

bool Value::AppendStr(std::string* out, size_t max_bytes) const {
  switch (kind_) {
    case Kind::kUndefined:
      return true;
    case Kind::kString:
      if (string_->size() > max_bytes - std::min(max_bytes, out->size())) return false;
      *out += *string_;
      return true;
    default:
      return AppendRepr(out, max_bytes);
  }
}

bool Value::AppendRepr(std::string* out, size_t max_bytes) const {
  // Every element adds at least one byte (a separator or a bracket), so the check after each
  // one bounds the work by max_bytes even for lists that repeat one huge value.
  auto add = [&](std::string_view text) {
    if (text.size() > max_bytes - std::min(max_bytes, out->size())) return false;
    out->append(text);
    return true;
  };
  switch (kind_) {
    case Kind::kUndefined:
      return true;
    case Kind::kNone:
      return add("None");
    case Kind::kBool:
      return add(int_ ? "True" : "False");
    case Kind::kInt:
      return add(absl::StrCat(int_));
    case Kind::kFloat:
      return add(PyFloatRepr(float_));
    case Kind::kString:
      // The quoted form is longer than the text (and at most 4x + 2): skip building it when
      // it cannot fit.
      if (string_->size() + 2 > max_bytes - std::min(max_bytes, out->size())) return false;
      return add(PyStringRepr(*string_));
    case Kind::kList: {
      if (!add(is_tuple_ ? "(" : "[")) return false;
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i > 0 && !add(", ")) return false;
        if (!(*list_)[i].AppendRepr(out, max_bytes)) return false;
      }
      if (is_tuple_ && list_->size() == 1 && !add(",")) return false;
      return add(is_tuple_ ? ")" : "]");
    }
    case Kind::kDict: {
      if (is_namespace_) return add("<Namespace>");
      if (!add("{")) return false;
      for (size_t i = 0; i < dict_->items.size(); ++i) {
        if (i > 0 && !add(", ")) return false;
        if (!Value::String(dict_->items[i].first).AppendRepr(out, max_bytes)) return false;
        if (!add(": ") || !dict_->items[i].second.AppendRepr(out, max_bytes)) return false;
      }
      return add("}");
    }
    case Kind::kCallable:
      return add("<function>");
  }
  return true;
}

namespace {

void JsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (c < 0x20) {
          *out += absl::StrFormat("\\u%04x", c);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

struct JsonOptions {
  int64_t indent;
  bool sort_keys;
  size_t max_bytes;
};

absl::Status TooLong(size_t max_bytes) {
  return absl::ResourceExhaustedError(
      absl::StrCat("tojson: the text exceeds the render limit max_output_bytes = ", max_bytes));
}

// Long on purpose (~70 lines): Python json.dumps' output for each value kind (separators,
// indentation, sorted keys, the size limit), one case each.
absl::Status ToJsonImpl(const Value& v, const JsonOptions& o, int depth, std::string* out) {
  if (depth > 256) return absl::InvalidArgumentError("tojson: value nested too deeply");
  if (out->size() > o.max_bytes) return TooLong(o.max_bytes);
  const int64_t indent = o.indent;
  const bool sort_keys = o.sort_keys;
  // Indentation is checked before it is built: tojson(indent=10**12) must not allocate.
  if (indent >= 0 && static_cast<uint64_t>(indent) > o.max_bytes / (depth + 1))
    return TooLong(o.max_bytes);
  const std::string newline = indent >= 0 ? "\n" + std::string((depth + 1) * indent, ' ') : "";
  const std::string closing = indent >= 0 ? "\n" + std::string(depth * indent, ' ') : "";
  const std::string sep = indent >= 0 ? "," : ", ";
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return absl::InvalidArgumentError("tojson: undefined value is not JSON serializable");
    case Value::Kind::kNone:
      *out += "null";
      return absl::OkStatus();
    case Value::Kind::kBool:
      *out += v.AsBool() ? "true" : "false";
      return absl::OkStatus();
    case Value::Kind::kInt:
      *out += absl::StrCat(v.AsInt());
      return absl::OkStatus();
    case Value::Kind::kFloat: {
      const double d = v.AsFloat();
      *out += std::isnan(d)   ? "NaN"
              : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity")
                              : PyFloatRepr(d);
      return absl::OkStatus();
    }
    case Value::Kind::kString:
      JsonString(v.AsString(), out);
      return absl::OkStatus();
    case Value::Kind::kList: {
      if (v.AsList().empty()) {
        *out += "[]";
        return absl::OkStatus();
      }
      *out += "[";
      for (size_t i = 0; i < v.AsList().size(); ++i) {
        *out += (i > 0 ? sep : "") + newline;
        RAMI_RETURN_IF_ERROR(ToJsonImpl(v.AsList()[i], o, depth + 1, out));
      }
      *out += closing + "]";
      return absl::OkStatus();
    }
    case Value::Kind::kDict: {
      auto items = v.AsDict().items;
      if (items.empty()) {
        *out += "{}";
        return absl::OkStatus();
      }
      if (sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      *out += "{";
      for (size_t i = 0; i < items.size(); ++i) {
        *out += (i > 0 ? sep : "") + newline;
        JsonString(items[i].first, out);
        *out += ": ";
        RAMI_RETURN_IF_ERROR(ToJsonImpl(items[i].second, o, depth + 1, out));
      }
      *out += closing + "}";
      return absl::OkStatus();
    }
    case Value::Kind::kCallable:
      return absl::InvalidArgumentError("tojson: a function is not JSON serializable");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> Value::ToJson(int64_t indent, bool sort_keys, size_t max_bytes) const {
  std::string out;
  RAMI_RETURN_IF_ERROR(ToJsonImpl(*this, {indent, sort_keys, max_bytes}, 0, &out));
  if (out.size() > max_bytes) return TooLong(max_bytes);
  return out;
}

}  // namespace rami::jinja
