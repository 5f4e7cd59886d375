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
#include "coordinator/chat/jinja_value.h"

namespace rami::jinja::internal {

constexpr size_t kMaxOutputBytes = 64 << 20;
constexpr int64_t kMaxIterations = 1'000'000;  // chat templates loop over messages
constexpr int kMaxDepth = 64;

enum class Flow { kNormal, kBreak, kContinue };

class Interpreter {
 public:
  explicit Interpreter(const ValueDict& context) {
    scopes_.push_back(std::make_shared<ValueDict>(context));
  }

  absl::StatusOr<Flow> Exec(const Body& body, std::string* out);

 private:
  absl::Status Error(int line, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("template line ", line, ": ", what));
  }
  absl::Status AtLine(int line, const absl::Status& s) const {
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
  int64_t iterations_ = 0;
  int depth_ = 0;
};

}  // namespace rami::jinja::internal
