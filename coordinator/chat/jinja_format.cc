// Python string formatting (see jinja_format.h).
#include "coordinator/chat/jinja_format.h"

#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace rami::jinja {
namespace {

absl::Status FormatError(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("str.format: ", what));
}

// Appends `text` to *out after charging it; the budget caps any one string, so *out too.
absl::Status Append(std::string_view text, std::string* out, RenderBudget* budget) {
  RAMI_RETURN_IF_ERROR(budget->ChargeAppend(out->size(), text.size()));
  out->append(text);
  return absl::OkStatus();
}

int64_t CodePoints(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// One replacement field's text: `value` converted (!s / !r) and padded per `spec`.
absl::Status AppendField(const Value& value, char conversion, std::string_view spec,
                         std::string* out, RenderBudget* budget) {
  RAMI_ASSIGN_OR_RETURN(const std::string text,
                        conversion == 'r' ? budget->Repr(value) : budget->Str(value));
  // [[fill]align][width]
  char fill = ' ', align = value.is_number() && conversion == 0 ? '>' : '<';
  size_t k = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^'; };
  if (spec.size() >= 2 && is_align(spec[1])) {
    fill = spec[0];
    align = spec[1];
    k = 2;
  } else if (!spec.empty() && is_align(spec[0])) {
    align = spec[0];
    k = 1;
  }
  uint64_t width = 0;
  if (k < spec.size()) {
    const auto [ptr, ec] = std::from_chars(spec.data() + k, spec.data() + spec.size(), width);
    if (ec == std::errc::result_out_of_range) width = UINT64_MAX;  // caught by the budget
    if (ptr != spec.data() + spec.size() || (ec != std::errc() && width != UINT64_MAX))
      return FormatError(absl::StrCat("format spec '", Quote(spec), "' is not supported"));
  }
  const uint64_t length = static_cast<uint64_t>(CodePoints(text));
  const uint64_t pad = width > length ? width - length : 0;
  RAMI_RETURN_IF_ERROR(budget->ChargeAppend(out->size(), SaturatingAdd(text.size(), pad)));
  const uint64_t left = align == '>' ? pad : align == '^' ? pad / 2 : 0;
  out->append(left, fill);
  out->append(text);
  out->append(pad - left, fill);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Value> PercentFormat(const std::string& fmt, const Value& args,
                                    RenderBudget* budget) {
  ValueList values = args.is_tuple() ? args.AsList() : ValueList{args};
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      RAMI_RETURN_IF_ERROR(Append(std::string_view(&fmt[i], 1), &out, budget));
      continue;
    }
    const char spec = fmt[++i];
    if (spec == '%') {
      RAMI_RETURN_IF_ERROR(Append("%", &out, budget));
      continue;
    }
    if (next >= values.size())
      return absl::InvalidArgumentError("not enough arguments for format string");
    const Value& v = values[next++];
    std::string piece;
    if (spec == 's') {
      RAMI_ASSIGN_OR_RETURN(piece, budget->Str(v));
    } else if (spec == 'r') {
      RAMI_ASSIGN_OR_RETURN(piece, budget->Repr(v));
    } else if (spec == 'd' || spec == 'i') {
      piece = absl::StrCat(v.AsInt());
    } else if (spec == 'f') {
      piece = absl::StrFormat("%f", v.AsFloat());
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported format character '", std::string(1, spec), "'"));
    }
    RAMI_RETURN_IF_ERROR(Append(piece, &out, budget));
  }
  return Value::String(std::move(out));
}

absl::StatusOr<Value> StrFormat(const std::string& fmt, const ValueList& args,
                                RenderBudget* budget) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const bool doubled = i + 1 < fmt.size() && fmt[i + 1] == fmt[i];
    if ((fmt[i] == '{' || fmt[i] == '}') && doubled) {
      RAMI_RETURN_IF_ERROR(Append(std::string_view(&fmt[i], 1), &out, budget));
      ++i;
      continue;
    }
    if (fmt[i] != '{') {
      RAMI_RETURN_IF_ERROR(Append(std::string_view(&fmt[i], 1), &out, budget));
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) return FormatError("unmatched '{'");
    const std::string_view field(fmt.data() + i + 1, close - i - 1);
    const size_t name_end = std::min(field.find(':'), field.find('!'));
    const std::string_view name = field.substr(0, name_end);
    std::string_view rest = name_end == std::string_view::npos ? "" : field.substr(name_end);
    char conversion = 0;
    if (!rest.empty() && rest[0] == '!') {
      if (rest.size() < 2 || (rest[1] != 's' && rest[1] != 'r') ||
          (rest.size() > 2 && rest[2] != ':'))
        return FormatError(absl::StrCat("bad conversion in '{", Quote(field), "}'"));
      conversion = rest[1];
      rest.remove_prefix(2);
    }
    if (!rest.empty()) rest.remove_prefix(1);  // ':'
    size_t index = auto_index;
    if (name.empty()) {
      ++auto_index;
    } else {
      const auto [ptr, ec] = std::from_chars(name.data(), name.data() + name.size(), index);
      if (ec != std::errc() || ptr != name.data() + name.size())
        return FormatError(absl::StrCat("field '{", Quote(field), "}' is not supported"));
    }
    if (index >= args.size()) return FormatError("index out of range");
    RAMI_RETURN_IF_ERROR(AppendField(args[index], conversion, rest, &out, budget));
    i = close;
  }
  return Value::String(std::move(out));
}

}  // namespace rami::jinja
