// Jinja expression parser (see jinja_expression_parser.h).
#include "coordinator/chat/jinja_expression_parser.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "base/status_macros.h"
#include "coordinator/chat/jinja_builtins.h"
#include "coordinator/chat/jinja_limits.h"

namespace rami::jinja::internal {

absl::Status ExpressionParser::CheckDepth(const Expr* node) const {
  if (nesting_ <= kMaxParseDepth && (node == nullptr || node->depth <= kMaxParseDepth))
    return absl::OkStatus();
  return Error(absl::StrCat("expression or tags nested deeper than ", kMaxParseDepth,
                            " levels (kMaxParseDepth)"));
}

// Integer literal: Python would make a big int; rami's ints are 64-bit.
absl::StatusOr<int64_t> ExpressionParser::ParseIntLiteral(const Token& tok) const {
  int64_t v = 0;
  const char* end = tok.text.data() + tok.text.size();
  const auto [ptr, ec] = std::from_chars(tok.text.data(), end, v);
  if (ec != std::errc() || ptr != end)
    return Error(absl::StrCat("integer literal ", Quote(tok.text), " does not fit in 64 bits"));
  return v;
}

absl::Status ExpressionParser::Expect(T type, const char* what) {
  if (Peek().type != type) {
    return Error(absl::StrCat("expected ", what, ", got '", Quote(Peek().text), "'"));
  }
  ++pos_;
  return absl::OkStatus();
}

absl::Status ExpressionParser::ExpectOp(const char* op) {
  if (!IsOp(op)) return Error(absl::StrCat("expected '", op, "', got '", Peek().text, "'"));
  ++pos_;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ExpressionParser::ExpectName() {
  if (Peek().type != T::kName) {
    return Error(absl::StrCat("expected a name, got '", Peek().text, "'"));
  }
  return Next().text;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseExpr() {
  Nesting nesting(&nesting_);
  RAMI_RETURN_IF_ERROR(CheckDepth());
  RAMI_ASSIGN_OR_RETURN(ExprPtr node, ParseOr());
  while (IsName("if")) {
    ++pos_;
    RAMI_ASSIGN_OR_RETURN(ExprPtr cond, ParseOr());
    ExprPtr other;
    if (IsName("else")) {
      ++pos_;
      RAMI_ASSIGN_OR_RETURN(other, ParseExpr());
    }
    node = Make(Expr::Kind::kCondition, {cond, node, other});
    RAMI_RETURN_IF_ERROR(CheckDepth(node.get()));
  }
  RAMI_RETURN_IF_ERROR(CheckDepth(node.get()));
  return node;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseOr() {
  RAMI_ASSIGN_OR_RETURN(ExprPtr node, ParseAnd());
  while (IsName("or")) {
    ++pos_;
    RAMI_ASSIGN_OR_RETURN(ExprPtr rhs, ParseAnd());
    node = Make(Expr::Kind::kBinary, {node, rhs}, "or");
    RAMI_RETURN_IF_ERROR(CheckDepth(node.get()));
  }
  return node;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseAnd() {
  RAMI_ASSIGN_OR_RETURN(ExprPtr node, ParseNot());
  while (IsName("and")) {
    ++pos_;
    RAMI_ASSIGN_OR_RETURN(ExprPtr rhs, ParseNot());
    node = Make(Expr::Kind::kBinary, {node, rhs}, "and");
    RAMI_RETURN_IF_ERROR(CheckDepth(node.get()));
  }
  return node;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseNot() {
  if (IsName("not")) {
    ++pos_;
    Nesting nesting(&nesting_);
    RAMI_RETURN_IF_ERROR(CheckDepth());
    RAMI_ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
    return Make(Expr::Kind::kUnary, {operand}, "not");
  }
  return ParseCompare();
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseCompare() {
  RAMI_ASSIGN_OR_RETURN(ExprPtr node, ParseBinary(0));
  // Chained comparisons (a < b <= c) are "and"-ed pairwise, as in Python.
  ExprPtr result;
  while (true) {
    std::string op;
    if (Peek().type == T::kOperator &&
        (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" || Peek().text == "<=" ||
         Peek().text == ">" || Peek().text == ">=")) {
      op = Next().text;
    } else if (IsName("in")) {
      ++pos_;
      op = "in";
    } else if (IsName("not") && IsName("in", 1)) {
      pos_ += 2;
      op = "notin";
    } else {
      break;
    }
    RAMI_ASSIGN_OR_RETURN(ExprPtr rhs, ParseBinary(0));
    ExprPtr cmp = Make(Expr::Kind::kBinary, {node, rhs}, op);
    result = result == nullptr ? cmp : Make(Expr::Kind::kBinary, {result, cmp}, "and");
    RAMI_RETURN_IF_ERROR(CheckDepth(result.get()));
    node = rhs;
  }
  return result == nullptr ? node : result;
}

// Levels: 0 "~", 1 "+ -", 2 "* / // %", 3 "**".
absl::StatusOr<ExprPtr> ExpressionParser::ParseBinary(int level) {
  static const std::vector<std::vector<std::string>> kLevels = {
      {"~"}, {"+", "-"}, {"*", "/", "//", "%"}, {"**"}};
  if (level == 4) return ParseUnary(true);
  RAMI_ASSIGN_OR_RETURN(ExprPtr node, ParseBinary(level + 1));
  while (Peek().type == T::kOperator) {
    const auto& ops = kLevels[level];
    if (std::find(ops.begin(), ops.end(), Peek().text) == ops.end()) break;
    const std::string op = Next().text;
    RAMI_ASSIGN_OR_RETURN(ExprPtr rhs, ParseBinary(level + 1));
    node = Make(Expr::Kind::kBinary, {node, rhs}, op);
    RAMI_RETURN_IF_ERROR(CheckDepth(node.get()));
  }
  return node;
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseUnary(bool with_filter) {
  ExprPtr node;
  if (IsOp("-") || IsOp("+")) {
    const std::string op = Next().text;
    Nesting nesting(&nesting_);
    RAMI_RETURN_IF_ERROR(CheckDepth());
    RAMI_ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
    node = Make(Expr::Kind::kUnary, {operand}, op);
  } else {
    RAMI_ASSIGN_OR_RETURN(node, ParsePrimary());
    RAMI_ASSIGN_OR_RETURN(node, ParsePostfix(node));
  }
  if (with_filter) return ParseFilterTest(node);
  return node;
}

// Long on purpose (~65 lines): the dispatch over primary expressions (literals, names,
// parenthesized tuples, lists, dicts), one case each.
absl::StatusOr<ExprPtr> ExpressionParser::ParsePrimary() {
  const Token tok = Next();
  switch (tok.type) {
    case T::kString: {
      std::string s = tok.text;
      while (Peek().type == T::kString) s += Next().text;  // adjacent literals concatenate
      return MakeLiteral(Value::String(s));
    }
    case T::kInt: {
      RAMI_ASSIGN_OR_RETURN(int64_t v, ParseIntLiteral(tok));
      return MakeLiteral(Value::Int(v));
    }
    case T::kFloat:  // strtod, not stod: an out-of-range literal is inf or 0, as in Python
      return MakeLiteral(Value::Float(std::strtod(tok.text.c_str(), nullptr)));
    case T::kName: {
      if (tok.text == "true" || tok.text == "True") return MakeLiteral(Value::Bool(true));
      if (tok.text == "false" || tok.text == "False") return MakeLiteral(Value::Bool(false));
      if (tok.text == "none" || tok.text == "None") return MakeLiteral(Value::None());
      return Make(Expr::Kind::kName, {}, tok.text);
    }
    case T::kOperator: {
      if (tok.text == "(") {
        if (IsOp(")")) {
          ++pos_;
          return Make(Expr::Kind::kTuple, {});
        }
        RAMI_ASSIGN_OR_RETURN(ExprPtr first, ParseExpr());
        if (IsOp(")")) {
          ++pos_;
          return first;
        }
        std::vector<ExprPtr> items{first};
        while (IsOp(",")) {
          ++pos_;
          if (IsOp(")")) break;
          RAMI_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr());
          items.push_back(e);
        }
        RAMI_RETURN_IF_ERROR(ExpectOp(")"));
        return Make(Expr::Kind::kTuple, std::move(items));
      }
      if (tok.text == "[" || tok.text == "{") {
        const bool is_dict = tok.text == "{";
        const char* close = is_dict ? "}" : "]";
        std::vector<ExprPtr> items;
        while (!IsOp(close)) {
          RAMI_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr());
          items.push_back(e);
          if (is_dict) {
            RAMI_RETURN_IF_ERROR(ExpectOp(":"));
            RAMI_ASSIGN_OR_RETURN(ExprPtr v, ParseExpr());
            items.push_back(v);
          }
          if (!IsOp(close)) RAMI_RETURN_IF_ERROR(ExpectOp(","));
        }
        ++pos_;
        return Make(is_dict ? Expr::Kind::kDict : Expr::Kind::kList, std::move(items));
      }
      break;
    }
    default:
      break;
  }
  --pos_;
  return Error(absl::StrCat("unexpected '", Quote(tok.text), "' in expression"));
}

absl::Status ExpressionParser::ParseArgs(Expr* call) {
  while (!IsOp(")")) {
    if (Peek().type == T::kName && IsOp("=", 1)) {
      std::string key = Next().text;
      ++pos_;
      RAMI_ASSIGN_OR_RETURN(ExprPtr v, ParseExpr());
      call->kwargs.emplace_back(key, v);
    } else {
      RAMI_ASSIGN_OR_RETURN(ExprPtr v, ParseExpr());
      call->args.push_back(v);
    }
    if (!IsOp(")")) RAMI_RETURN_IF_ERROR(ExpectOp(","));
  }
  ++pos_;
  return absl::OkStatus();
}

absl::StatusOr<ExprPtr> ExpressionParser::ParsePostfix(ExprPtr node) {
  while (true) {
    if (IsOp(".")) {
      ++pos_;
      if (Peek().type == T::kInt) {  // x.0 is x[0]
        RAMI_ASSIGN_OR_RETURN(int64_t index, ParseIntLiteral(Next()));
        node = Make(Expr::Kind::kGetItem, {node, MakeLiteral(Value::Int(index))});
        RAMI_RETURN_IF_ERROR(CheckDepth(node.get()));
        continue;
      }
      RAMI_ASSIGN_OR_RETURN(std::string name, ExpectName());
      node = Make(Expr::Kind::kGetAttr, {node}, name);
    } else if (IsOp("[")) {
      ++pos_;
      std::vector<ExprPtr> parts{node};
      bool is_slice = false;
      for (int part = 0; part < 3; ++part) {
        if (IsOp(":") || IsOp("]")) {
          parts.push_back(nullptr);
        } else {
          RAMI_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr());
          parts.push_back(e);
        }
        if (!IsOp(":")) break;
        is_slice = true;
        ++pos_;
      }
      RAMI_RETURN_IF_ERROR(ExpectOp("]"));
      // Only a slice may leave a part out: `x[]` is a syntax error, as in jinja2.
      if (!is_slice && parts[1] == nullptr) return Error("expected an expression inside '[]'");
      while (parts.size() < 4) parts.push_back(nullptr);
      node = is_slice ? Make(Expr::Kind::kSlice, std::move(parts))
                      : Make(Expr::Kind::kGetItem, {parts[0], parts[1]});
    } else if (IsOp("(")) {
      ++pos_;
      auto call = Make(Expr::Kind::kCall, {node});
      RAMI_RETURN_IF_ERROR(ParseArgs(call.get()));
      node = call;
    } else {
      return node;
    }
    RAMI_RETURN_IF_ERROR(CheckDepth(node.get()));
  }
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseFilter(ExprPtr input) {
  RAMI_ASSIGN_OR_RETURN(std::string name, ExpectName());
  if (!IsKnownFilter(name)) return Error(absl::StrCat("unknown filter '", Quote(name), "'"));
  auto filter = Make(Expr::Kind::kFilter, {std::move(input)}, name);
  if (IsOp("(")) {
    ++pos_;
    RAMI_RETURN_IF_ERROR(ParseArgs(filter.get()));
  }
  return ExprPtr(filter);
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseFilterTest(ExprPtr node) {
  while (true) {
    if (IsOp("|")) {
      ++pos_;
      RAMI_ASSIGN_OR_RETURN(node, ParseFilter(node));
    } else if (IsName("is")) {
      ++pos_;
      RAMI_ASSIGN_OR_RETURN(node, ParseTest(node));
    } else {
      return node;
    }
    RAMI_RETURN_IF_ERROR(CheckDepth(node.get()));
  }
}

absl::StatusOr<ExprPtr> ExpressionParser::ParseTest(ExprPtr node) {
  bool negate = false;
  if (IsName("not")) {
    ++pos_;
    negate = true;
  }
  std::string name;
  if (Peek().type == T::kName) {
    name = Next().text;
  } else if (Peek().type == T::kOperator && (Peek().text == "==" || Peek().text == "!=" ||
                                             Peek().text == "<" || Peek().text == ">")) {
    name = Next().text;
  } else {
    return Error("expected a test name after 'is'");
  }
  if (!IsKnownTest(name)) return Error(absl::StrCat("unknown test '", Quote(name), "'"));
  auto t = Make(Expr::Kind::kTest, {node}, name);
  t->negate = negate;
  if (IsOp("(")) {
    ++pos_;
    RAMI_RETURN_IF_ERROR(ParseArgs(t.get()));
  } else if (Peek().type == T::kString || Peek().type == T::kInt || Peek().type == T::kFloat ||
             IsOp("[") || IsOp("{") ||
             (Peek().type == T::kName && !IsName("and") && !IsName("or") && !IsName("else") &&
              !IsName("if") && !IsName("is") && !IsName("not") && !IsName("in"))) {
    RAMI_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());  // "is divisibleby 3"
    RAMI_ASSIGN_OR_RETURN(arg, ParsePostfix(arg));
    t->args.push_back(arg);
  }
  return ExprPtr(t);
}

}  // namespace rami::jinja::internal
