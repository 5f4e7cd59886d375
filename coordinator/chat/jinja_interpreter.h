// The interpreter behind jinja::Template (internal): scopes, statement execution
// (jinja_template.cc) and expression evaluation (jinja_expressions.cc).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "coordinator/chat/jinja_ast.h"
#include "coordinator/chat/jinja_limits.h"
#include "coordinator/chat/jinja_value.h"

namespace rami::jinja::internal {

enum class Flow { kNormal, kBreak, kContinue };

// One render: every statement and expression node costs a step of the budget and a level of
// depth while it runs, every output append is charged before it happens.
class Interpreter {
 public:
  Interpreter(const ValueDict& context, const RenderLimits& limits) : budget_(limits) {
    scopes_.push_back(std::make_shared<ValueDict>(context));
  }
  // Empties the namespaces the render created: `set ns.me = ns` makes a reference cycle that
  // would otherwise outlive the render.
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  absl::StatusOr<Flow> Exec(const Body& body, std::string* out);

 private:
  // Scope of one level of Exec / Eval recursion.
  class Level {
   public:
    explicit Level(int* depth) : depth_(depth) { ++*depth_; }
    ~Level() { --*depth_; }
    Level(const Level&) = delete;
    Level& operator=(const Level&) = delete;

   private:
    int* depth_;
  };
  // Charges a step; fails once the recursion is deeper than max_depth.
  absl::Status Enter(int line);
  // Appends str(v) / text to *out within max_output_bytes.
  absl::Status Emit(int line, const Value& v, std::string* out);
  absl::Status EmitText(int line, std::string_view text, std::string* out);
  absl::StatusOr<Value> EvalNode(const Expr& e);

  absl::Status Error(int line, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("template line ", line, ": ", what));
  }
  absl::Status AtLine(int line, const absl::Status& s) const {
    // An error from a deeper line is already located; it keeps its code (ResourceExhausted
    // for a limit).
    if (s.ok() || absl::StartsWith(s.message(), "template line")) return s;
    return absl::Status(s.code(), absl::StrCat("template line ", line, ": ", s.message()));
  }
  Value Lookup(const std::string& name) const;
  void Assign(const std::string& name, Value v) { scopes_.back()->Set(name, std::move(v)); }
  absl::StatusOr<Flow> ExecStmt(const Stmt& s, std::string* out);
  absl::Status ExecFor(const Stmt& s, std::string* out);
  absl::StatusOr<Value> Eval(const Expr& e);
  absl::StatusOr<Value> EvalBinary(const Expr& e);
  // Evaluates a call's, filter's or test's arguments: e.args[1..] and e.kwargs.
  absl::Status EvalArguments(const Expr& e, ValueList* args, KwArgs* kwargs);
  absl::StatusOr<Value> EvalCall(const Expr& e);
  absl::StatusOr<Value> CallGlobal(const std::string& name, const ValueList& args,
                                   const KwArgs& kwargs, int line);
  absl::StatusOr<Value> MakeMacro(const Stmt& s);

  std::vector<std::shared_ptr<ValueDict>> scopes_;
  const Value* filter_input_ = nullptr;
  RenderBudget budget_;
  std::vector<Value> namespaces_;  // created by namespace(), emptied by the destructor
  int64_t iterations_ = 0;
  int depth_ = 0;
};

}  // namespace rami::jinja::internal
