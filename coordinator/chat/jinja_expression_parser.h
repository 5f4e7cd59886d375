// Expression parser of rami's Jinja interpreter (internal): a cursor over the lexer's tokens
// and jinja2's expression grammar. The statement parser (jinja_parser.cc) derives from it to
// share the cursor. Precedence follows jinja2's parser: conditional < or < and < not <
// comparison < ~ < + - < * / // % < ** < unary < postfix, with filters and tests binding to
// the postfix expression.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "coordinator/chat/jinja_ast.h"
#include "coordinator/chat/jinja_lexer.h"

namespace rami::jinja::internal {

class ExpressionParser {
 public:
  explicit ExpressionParser(const std::vector<Token>& tokens) : toks_(tokens) {}

  // A full expression, including `a if cond else b`.
  absl::StatusOr<ExprPtr> ParseExpr();
  // An expression without the conditional: in `for x in xs if cond`, "if" belongs to the loop.
  absl::StatusOr<ExprPtr> ParseOr();
  // Call arguments, positional and name=value, after '(' up to and including ')'.
  absl::Status ParseArgs(Expr* call);
  // One filter, `name` or `name(args)` (after its '|'), applied to `input`.
  absl::StatusOr<ExprPtr> ParseFilter(ExprPtr input);
  // The filters (`| name(args)`) and tests (`is [not] name args`) applied to `node`.
  absl::StatusOr<ExprPtr> ParseFilterTest(ExprPtr node);

 protected:
  using T = Token::Type;

  const Token& Peek(size_t k = 0) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  const Token& Next() { return toks_[std::min(pos_++, toks_.size() - 1)]; }
  bool IsOp(const char* op, size_t k = 0) const {
    return Peek(k).type == T::kOperator && Peek(k).text == op;
  }
  bool IsName(const char* name, size_t k = 0) const {
    return Peek(k).type == T::kName && Peek(k).text == name;
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("template line ", Peek().line, ": ", what));
  }
  absl::Status Expect(T type, const char* what);
  absl::Status ExpectOp(const char* op);
  absl::StatusOr<std::string> ExpectName();
  absl::StatusOr<int64_t> ParseIntLiteral(const Token& tok) const;

  // A node at the current line (mutable until it is stored as an ExprPtr).
  std::shared_ptr<Expr> Make(Expr::Kind kind, std::vector<ExprPtr> args,
                             std::string name = "") const {
    auto e = std::make_shared<Expr>();
    e->kind = kind;
    e->line = Peek().line;
    for (const ExprPtr& a : args) {
      if (a != nullptr) e->depth = std::max(e->depth, a->depth + 1);
    }
    e->args = std::move(args);
    e->name = std::move(name);
    return e;
  }

  // Scope of one level of parser recursion (a bracket, a unary operator, a nested tag).
  class Nesting {
   public:
    explicit Nesting(int* depth) : depth_(depth) { ++*depth_; }
    ~Nesting() { --*depth_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    int* depth_;
  };
  // Fails once the recursion (nesting_) or `node`'s subtree is deeper than kMaxParseDepth:
  // checked wherever either grows, before a deep tree could overflow the stack of the
  // parser, of the evaluator or of the tree's destructor.
  absl::Status CheckDepth(const Expr* node = nullptr) const;
  ExprPtr MakeLiteral(Value value) const {
    auto e = Make(Expr::Kind::kLiteral, {});
    e->value = std::move(value);
    return e;
  }

  const std::vector<Token>& toks_;
  size_t pos_ = 0;
  int nesting_ = 0;

 private:
  absl::StatusOr<ExprPtr> ParseAnd();
  absl::StatusOr<ExprPtr> ParseNot();
  absl::StatusOr<ExprPtr> ParseCompare();
  absl::StatusOr<ExprPtr> ParseBinary(int level);
  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter);
  absl::StatusOr<ExprPtr> ParsePrimary();
  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr node);
  absl::StatusOr<ExprPtr> ParseTest(ExprPtr node);  // after "is"
};

}  // namespace rami::jinja::internal
