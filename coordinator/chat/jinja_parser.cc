// Jinja statement parser (see jinja_parser.h): text, {{ output }} and the {% tags %} chat
// templates use. Expressions are parsed by the ExpressionParser this class extends.
#include "coordinator/chat/jinja_parser.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "coordinator/chat/jinja_expression_parser.h"
#include "coordinator/chat/jinja_limits.h"

namespace rami::jinja {
namespace {

class Parser : public internal::ExpressionParser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : ExpressionParser(tokens) {}

  absl::StatusOr<Body> ParseTemplate() {
    Body body;
    std::string end;
    RAMI_RETURN_IF_ERROR(ParseBody({}, &body, &end));
    return body;
  }

 private:
  // Parses statements until a block tag whose name is in `ends` (consumed; name in *end).
  absl::Status ParseBody(const std::set<std::string>& ends, Body* body, std::string* end);
  absl::StatusOr<StmtPtr> ParseStatement(const std::string& keyword, int line);
  absl::Status ParseSet(Stmt* s);
  absl::Status ParseFor(Stmt* s);
  absl::Status ParseIf(Stmt* s);
};

absl::Status Parser::ParseBody(const std::set<std::string>& ends, Body* body, std::string* end) {
  Nesting nesting(&nesting_);
  RAMI_RETURN_IF_ERROR(CheckDepth());
  while (true) {
    const Token& tok = Peek();
    if (tok.type == T::kEnd) {
      if (ends.empty()) return absl::OkStatus();
      std::string expected = *ends.begin();
      for (const std::string& e : ends) {
        if (e.rfind("end", 0) == 0) expected = e;
      }
      return Error(absl::StrCat("missing {% ", expected, " %} at end of template"));
    }
    if (tok.type == T::kText) {
      auto s = std::make_shared<Stmt>();
      s->kind = Stmt::Kind::kText;
      s->text = Next().text;
      body->push_back(s);
    } else if (tok.type == T::kVarBegin) {
      ++pos_;
      auto s = std::make_shared<Stmt>();
      s->kind = Stmt::Kind::kOutput;
      s->line = tok.line;
      RAMI_ASSIGN_OR_RETURN(s->expr, ParseExpr());
      RAMI_RETURN_IF_ERROR(Expect(T::kVarEnd, "'}}'"));
      body->push_back(s);
    } else if (tok.type == T::kBlockBegin) {
      ++pos_;
      const int line = Peek().line;
      RAMI_ASSIGN_OR_RETURN(std::string keyword, ExpectName());
      if (ends.count(keyword)) {
        *end = keyword;
        return absl::OkStatus();
      }
      RAMI_ASSIGN_OR_RETURN(StmtPtr s, ParseStatement(keyword, line));
      body->push_back(s);
    } else {
      return Error(absl::StrCat("unexpected '", Quote(tok.text), "'"));
    }
  }
}

absl::StatusOr<StmtPtr> Parser::ParseStatement(const std::string& keyword, int line) {
  auto s = std::make_shared<Stmt>();
  s->line = line;
  std::string end;
  if (keyword == "if") {
    RAMI_RETURN_IF_ERROR(ParseIf(s.get()));
    return s;
  }
  if (keyword == "for") {
    RAMI_RETURN_IF_ERROR(ParseFor(s.get()));
    return s;
  }
  if (keyword == "set") {
    RAMI_RETURN_IF_ERROR(ParseSet(s.get()));
    return s;
  }
  if (keyword == "macro") {
    s->kind = Stmt::Kind::kMacro;
    RAMI_ASSIGN_OR_RETURN(s->text, ExpectName());
    RAMI_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      RAMI_ASSIGN_OR_RETURN(std::string param, ExpectName());
      ExprPtr dflt;
      if (IsOp("=")) {
        ++pos_;
        RAMI_ASSIGN_OR_RETURN(dflt, ParseExpr());
      }
      s->params.emplace_back(param, dflt);
      if (!IsOp(")")) RAMI_RETURN_IF_ERROR(ExpectOp(","));
    }
    ++pos_;
    RAMI_RETURN_IF_ERROR(Expect(T::kBlockEnd, "'%}'"));
    RAMI_RETURN_IF_ERROR(ParseBody({"endmacro"}, &s->body, &end));
  } else if (keyword == "filter") {
    s->kind = Stmt::Kind::kFilterBlock;
    // {% filter name(args) | more %}: the body's text is the first filter's input.
    RAMI_ASSIGN_OR_RETURN(ExprPtr first,
                          ParseFilter(Make(Expr::Kind::kLiteral, {}, "__filter_input__")));
    RAMI_ASSIGN_OR_RETURN(s->expr, ParseFilterTest(first));
    RAMI_RETURN_IF_ERROR(Expect(T::kBlockEnd, "'%}'"));
    RAMI_RETURN_IF_ERROR(ParseBody({"endfilter"}, &s->body, &end));
  } else if (keyword == "break" || keyword == "continue") {
    s->kind = keyword == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
  } else if (keyword == "generation") {
    s->kind = Stmt::Kind::kScope;
    RAMI_RETURN_IF_ERROR(Expect(T::kBlockEnd, "'%}'"));
    RAMI_RETURN_IF_ERROR(ParseBody({"endgeneration"}, &s->body, &end));
  } else {
    return Error(absl::StrCat("unsupported tag {% ", Quote(keyword), " %}"));
  }
  RAMI_RETURN_IF_ERROR(Expect(T::kBlockEnd, "'%}'"));
  return s;
}

absl::Status Parser::ParseSet(Stmt* s) {
  std::string end;
  RAMI_ASSIGN_OR_RETURN(std::string name, ExpectName());
  s->targets.push_back(name);
  if (IsOp(".")) {
    ++pos_;
    RAMI_ASSIGN_OR_RETURN(s->attr, ExpectName());
  }
  while (IsOp(",")) {
    ++pos_;
    RAMI_ASSIGN_OR_RETURN(std::string more, ExpectName());
    s->targets.push_back(more);
  }
  if (Peek().type == T::kBlockEnd && s->targets.size() == 1 && s->attr.empty()) {
    ++pos_;
    s->kind = Stmt::Kind::kSetBlock;
    RAMI_RETURN_IF_ERROR(ParseBody({"endset"}, &s->body, &end));
  } else {
    s->kind = Stmt::Kind::kSet;
    RAMI_RETURN_IF_ERROR(ExpectOp("="));
    RAMI_ASSIGN_OR_RETURN(s->expr, ParseExpr());
    if (IsOp(",")) {  // set a, b = x, y
      std::vector<ExprPtr> items{s->expr};
      while (IsOp(",")) {
        ++pos_;
        RAMI_ASSIGN_OR_RETURN(ExprPtr e, ParseExpr());
        items.push_back(e);
      }
      s->expr = Make(Expr::Kind::kTuple, std::move(items));
    }
  }
  return Expect(T::kBlockEnd, "'%}'");
}

absl::Status Parser::ParseIf(Stmt* s) {
  s->kind = Stmt::Kind::kIf;
  std::string end = "elif";
  while (end == "elif") {
    RAMI_ASSIGN_OR_RETURN(ExprPtr cond, ParseExpr());
    RAMI_RETURN_IF_ERROR(Expect(T::kBlockEnd, "'%}'"));
    Body body;
    RAMI_RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, &body, &end));
    s->branches.emplace_back(cond, std::move(body));
  }
  if (end == "else") {
    RAMI_RETURN_IF_ERROR(Expect(T::kBlockEnd, "'%}'"));
    RAMI_RETURN_IF_ERROR(ParseBody({"endif"}, &s->else_body, &end));
  }
  return Expect(T::kBlockEnd, "'%}'");
}

absl::Status Parser::ParseFor(Stmt* s) {
  s->kind = Stmt::Kind::kFor;
  do {
    if (!s->targets.empty()) ++pos_;  // ','
    RAMI_ASSIGN_OR_RETURN(std::string name, ExpectName());
    s->targets.push_back(name);
  } while (IsOp(","));
  if (!IsName("in")) return Error("expected 'in' in for loop");
  ++pos_;
  RAMI_ASSIGN_OR_RETURN(s->expr, ParseOr());  // no conditional: "if" starts the loop filter
  if (IsName("if")) {
    ++pos_;
    RAMI_ASSIGN_OR_RETURN(s->filter, ParseOr());
  }
  if (IsName("recursive")) return Error("recursive for loops are not supported");
  RAMI_RETURN_IF_ERROR(Expect(T::kBlockEnd, "'%}'"));
  std::string end;
  RAMI_RETURN_IF_ERROR(ParseBody({"else", "endfor"}, &s->body, &end));
  if (end == "else") {
    RAMI_RETURN_IF_ERROR(Expect(T::kBlockEnd, "'%}'"));
    RAMI_RETURN_IF_ERROR(ParseBody({"endfor"}, &s->else_body, &end));
  }
  return Expect(T::kBlockEnd, "'%}'");
}

}  // namespace

absl::StatusOr<Body> Parse(const std::vector<Token>& tokens) {
  return Parser(tokens).ParseTemplate();
}

}  // namespace rami::jinja
