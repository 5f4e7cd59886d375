// Syntax tree of rami's Jinja interpreter: expressions and statements as parsed from the
// lexer's tokens. Nodes are shared so macros can keep their bodies.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/chat/jinja_value.h"

namespace rami::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // args
    kTuple,      // args
    kDict,       // kwargs (string keys) or args pairs (key, value, key, value...)
    kGetAttr,    // args[0].name
    kGetItem,    // args[0][args[1]]
    kSlice,      // args[0][args[1]:args[2]:args[3]] (null parts are literal undefined)
    kCall,       // args[0](args[1..], kwargs)
    kFilter,     // name(args[0], args[1..], kwargs)
    kTest,       // args[0] is name(args[1..]); negated when `negate`
    kUnary,      // name in {"-", "+", "not"} applied to args[0]
    kBinary,     // args[0] name args[1]; name in + - * / // % ** ~ and or in notin == != < <= > >=
    kCondition,  // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  int depth = 1;  // of this subtree: 1 + the deepest argument (bounded by kMaxParseDepth)
  Value value;
  std::string name;
  bool negate = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using StmtPtr = std::shared_ptr<const Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // branches: (condition, body)...; else_body
    kFor,          // targets in expr [if filter]: body / else_body
    kSet,          // targets (or target.attr) = expr
    kSetBlock,     // {% set name %}body{% endset %}
    kMacro,        // name(params with defaults): body
    kFilterBlock,  // {% filter name(args) %}body  (filter expr stored in expr, input is args[0])
    kBreak,
    kContinue,
    kScope,  // body rendered as is ({% generation %} of transformers' AssistantTracker)
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;    // output / for iterable / set value / filter call
  ExprPtr filter;  // for ... if filter
  std::vector<std::string> targets;
  std::string attr;  // set ns.attr
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters (default may be null)
};

}  // namespace rami::jinja
