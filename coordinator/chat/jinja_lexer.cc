// Jinja lexer (see jinja_lexer.h).
#include "coordinator/chat/jinja_lexer.h"

#include <cctype>

#include "absl/strings/str_cat.h"
#include "coordinator/chat/jinja_strings.h"

namespace rami::jinja {
namespace {

class Lexer {
 public:
  Lexer(std::string source, const LexOptions& options) : src_(std::move(source)), opt_(options) {}

  absl::StatusOr<std::vector<Token>> Run() {
    bool line_starting = true;  // jinja2: the previous tag's end consumed a newline
    while (pos_ < src_.size()) {
      const size_t tag = FindTagStart(pos_);
      std::string text = src_.substr(pos_, tag - pos_);
      line_ += Count(pos_, tag);
      if (tag == src_.size()) {
        Emit(Token::Type::kText, text);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign == '-') {
        while (!text.empty() && IsPySpace(text.back())) text.pop_back();
      } else if (sign != '+' && opt_.lstrip_blocks && kind != '{') {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          bool only_ws = l_pos < text.size();
          for (size_t k = l_pos; k < text.size(); ++k) only_ws &= IsPySpace(text[k]);
          if (only_ws) text.resize(l_pos);
        }
      }
      Emit(Token::Type::kText, text);
      pos_ = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      line_ += Count(tag, pos_);
      if (kind == '#') {
        const size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) return Error("unterminated comment {# ... #}");
        const bool minus = end > pos_ && src_[end - 1] == '-';
        const bool plus = end > pos_ && src_[end - 1] == '+';
        line_ += Count(pos_, end);
        pos_ = end + 2;
        line_starting = AfterTagEnd(minus, plus, /*block=*/true);
        continue;
      }
      const bool block = kind == '%';
      Emit(block ? Token::Type::kBlockBegin : Token::Type::kVarBegin, "");
      if (block && IsRawBlock()) {
        auto status = LexRaw();
        if (!status.ok()) return status;
        line_starting = false;
        continue;
      }
      bool minus = false, plus = false;
      auto status = LexExpression(block ? '%' : '}', &minus, &plus);
      if (!status.ok()) return status;
      Emit(block ? Token::Type::kBlockEnd : Token::Type::kVarEnd, "");
      line_starting = AfterTagEnd(minus, plus, block);
    }
    Emit(Token::Type::kEnd, "");
    return std::move(tokens_);
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("template line ", line_, ": ", what));
  }
  int Count(size_t from, size_t to) const {
    int n = 0;
    for (size_t k = from; k < to && k < src_.size(); ++k) n += src_[k] == '\n';
    return n;
  }
  void Emit(Token::Type type, std::string text) {
    if (type == Token::Type::kText && text.empty()) return;
    tokens_.push_back({type, std::move(text), line_});
  }
  size_t FindTagStart(size_t from) const {
    for (size_t k = from; k + 1 < src_.size(); ++k) {
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#'))
        return k;
    }
    return src_.size();
  }
  // Handles whitespace after a tag end; returns jinja2's line_starting for the next text.
  bool AfterTagEnd(bool minus, bool plus, bool block) {
    if (minus) {
      size_t k = pos_;
      while (k < src_.size() && IsPySpace(src_[k])) ++k;
      const bool newline = k > pos_ && src_[k - 1] == '\n';
      line_ += Count(pos_, k);
      pos_ = k;
      return newline;
    }
    if (block && !plus && opt_.trim_blocks && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
      ++line_;
      return true;
    }
    return false;
  }
  bool IsRawBlock() const {
    size_t k = pos_;
    while (k < src_.size() && IsPySpace(src_[k])) ++k;
    return src_.compare(k, 3, "raw") == 0 && (k + 3 >= src_.size() || !std::isalnum(src_[k + 3]));
  }
  absl::Status LexRaw();
  absl::Status LexExpression(char closer, bool* minus, bool* plus);

  std::string src_;
  LexOptions opt_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

absl::Status Lexer::LexRaw() {
  const size_t start = src_.find("%}", pos_);
  if (start == std::string::npos) return Error("unterminated {% raw %}");
  size_t body = start + 2;
  for (size_t k = body; k < src_.size(); ++k) {
    if (src_.compare(k, 2, "{%") != 0) continue;
    size_t j = k + 2;
    if (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) ++j;
    while (j < src_.size() && IsPySpace(src_[j])) ++j;
    if (src_.compare(j, 6, "endraw") != 0) continue;
    const size_t end = src_.find("%}", j);
    if (end == std::string::npos) break;
    tokens_.pop_back();  // the block-begin token
    Emit(Token::Type::kText, src_.substr(body, k - body));
    line_ += Count(pos_, end + 2);
    pos_ = end + 2;
    return absl::OkStatus();
  }
  return Error("{% raw %} without {% endraw %}");
}

// Long on purpose (~110 lines): one pass over an expression's characters with a branch per
// token kind (names, numbers, strings, operators, the closer); split, the grammar would be
// scattered over helpers that share the cursor.
absl::Status Lexer::LexExpression(char closer, bool* minus, bool* plus) {
  static const char* kOps[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*",
                               "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                               "]",  "{",  "}",  ".",  ",",  ":",  "|"};
  while (true) {
    while (pos_ < src_.size() && IsPySpace(src_[pos_])) {
      line_ += src_[pos_] == '\n';
      ++pos_;
    }
    if (pos_ >= src_.size())
      return Error(closer == '%' ? "unterminated {% ... %}" : "unterminated {{ ... }}");
    // Tag end, possibly with a whitespace-control sign.
    for (const char* sign : {"-", "+", ""}) {
      const std::string end = std::string(sign) + closer + "}";
      if (src_.compare(pos_, end.size(), end) == 0) {
        *minus = sign[0] == '-';
        *plus = sign[0] == '+';
        pos_ += end.size();
        return absl::OkStatus();
      }
    }
    const char c = src_[pos_];
    if (c == '\'' || c == '"') {
      std::string value;
      size_t k = pos_ + 1;
      for (; k < src_.size() && src_[k] != c; ++k) {
        if (src_[k] == '\\' && k + 1 < src_.size()) {
          const char e = src_[++k];
          switch (e) {
            case 'n':
              value += '\n';
              break;
            case 't':
              value += '\t';
              break;
            case 'r':
              value += '\r';
              break;
            case '\\':
            case '\'':
            case '"':
              value += e;
              break;
            default:
              value += '\\';
              value += e;
          }
        } else {
          value += src_[k];
        }
      }
      if (k >= src_.size()) return Error("unterminated string literal");
      line_ += Count(pos_, k);
      tokens_.push_back({Token::Type::kString, value, line_});
      pos_ = k + 1;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t k = pos_;
      bool is_float = false;
      while (k < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[k])) || src_[k] == '_'))
        ++k;
      if (k + 1 < src_.size() && src_[k] == '.' &&
          std::isdigit(static_cast<unsigned char>(src_[k + 1]))) {
        is_float = true;
        ++k;
        while (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) ++k;
      }
      if (k < src_.size() && (src_[k] == 'e' || src_[k] == 'E')) {
        size_t j = k + 1;
        if (j < src_.size() && (src_[j] == '+' || src_[j] == '-')) ++j;
        if (j < src_.size() && std::isdigit(static_cast<unsigned char>(src_[j]))) {
          is_float = true;
          k = j;
          while (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) ++k;
        }
      }
      std::string num = src_.substr(pos_, k - pos_);
      std::erase(num, '_');
      tokens_.push_back({is_float ? Token::Type::kFloat : Token::Type::kInt, num, line_});
      pos_ = k;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t k = pos_;
      while (k < src_.size() &&
             (std::isalnum(static_cast<unsigned char>(src_[k])) || src_[k] == '_'))
        ++k;
      tokens_.push_back({Token::Type::kName, src_.substr(pos_, k - pos_), line_});
      pos_ = k;
      continue;
    }
    bool matched = false;
    for (const char* op : kOps) {
      const size_t n = std::char_traits<char>::length(op);
      if (src_.compare(pos_, n, op) == 0) {
        tokens_.push_back({Token::Type::kOperator, op, line_});
        pos_ += n;
        matched = true;
        break;
      }
    }
    if (!matched) return Error(absl::StrCat("unexpected character '", std::string(1, c), "'"));
  }
}

}  // namespace

absl::StatusOr<std::vector<Token>> Lex(std::string_view source, const LexOptions& options) {
  // jinja2 normalizes newlines to "\n" and drops one trailing newline unless asked to keep it.
  std::string src;
  src.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      src += '\n';
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      src += source[k];
    }
  }
  if (!options.keep_trailing_newline && !src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src), options).Run();
}

}  // namespace rami::jinja
