// Expression evaluation of rami's Jinja interpreter (see jinja_interpreter.h): Python
// semantics for operators, attribute/item access, calls of globals, macros and methods.
#include <cmath>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "coordinator/chat/jinja_arithmetic.h"
#include "coordinator/chat/jinja_builtins.h"
#include "coordinator/chat/jinja_interpreter.h"

namespace rami::jinja::internal {
namespace {

absl::Status Undefined(const Expr& e) {
  std::string what = e.kind == Expr::Kind::kName
                         ? absl::StrCat("'", Quote(e.name), "' is undefined")
                         : "value is undefined";
  return absl::InvalidArgumentError(what);
}

}  // namespace

absl::StatusOr<Value> Interpreter::Eval(const Expr& e) {
  Level level(&depth_);
  RAMI_RETURN_IF_ERROR(Enter(e.line));
  RAMI_ASSIGN_OR_RETURN(Value v, EvalNode(e));
  // Containers only nest one level per node, so checking every result bounds every value's
  // depth, and with it the recursion of repr, tojson, comparisons and destructors.
  if (v.depth() > budget_.limits().max_depth) {
    return absl::ResourceExhaustedError(
        absl::StrCat("template line ", e.line,
                     ": value nested too deeply: exceeds the render "
                     "limit max_depth = ",
                     budget_.limits().max_depth));
  }
  return v;
}

// Long on purpose (~85 lines): the dispatch over expression kinds, one short case each; the
// cases that need more call out (filters, tests, calls, operators).
absl::StatusOr<Value> Interpreter::EvalNode(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      if (e.name == "__filter_input__" && filter_input_ != nullptr) return *filter_input_;
      return e.value;
    case Expr::Kind::kName:
      return Lookup(e.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      RAMI_RETURN_IF_ERROR(budget_.ChargeList(e.args.size()));
      ValueList items;
      for (const ExprPtr& a : e.args) {
        RAMI_ASSIGN_OR_RETURN(Value v, Eval(*a));
        items.push_back(std::move(v));
      }
      return Value::List(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      RAMI_RETURN_IF_ERROR(budget_.ChargeList(e.args.size() / 2));
      ValueDict d;
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
        RAMI_ASSIGN_OR_RETURN(Value key, Eval(*e.args[k]));
        RAMI_ASSIGN_OR_RETURN(Value v, Eval(*e.args[k + 1]));
        if (!key.is_string()) return Error(e.line, "dict keys must be strings");
        d.Set(key.AsString(), std::move(v));
      }
      return Value::Dict(std::move(d));
    }
    case Expr::Kind::kGetAttr: {
      RAMI_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
      if (obj.is_undefined()) return Undefined(*e.args[0]);
      return GetAttribute(obj, e.name);
    }
    case Expr::Kind::kGetItem: {
      RAMI_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
      RAMI_ASSIGN_OR_RETURN(Value key, Eval(*e.args[1]));
      if (obj.is_undefined()) return Undefined(*e.args[0]);
      return GetItem(obj, key, &budget_);
    }
    case Expr::Kind::kSlice: {
      RAMI_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
      Value parts[3];
      for (int k = 0; k < 3; ++k) {
        if (e.args[k + 1] != nullptr) {
          RAMI_ASSIGN_OR_RETURN(parts[k], Eval(*e.args[k + 1]));
        }
      }
      return Slice(obj, parts[0], parts[1], parts[2], &budget_);
    }
    case Expr::Kind::kCall:
      return EvalCall(e);
    case Expr::Kind::kFilter:
    case Expr::Kind::kTest: {
      RAMI_ASSIGN_OR_RETURN(Value input, Eval(*e.args[0]));
      ValueList args;
      KwArgs kwargs;
      RAMI_RETURN_IF_ERROR(EvalArguments(e, &args, &kwargs));
      if (e.kind == Expr::Kind::kFilter) return ApplyFilter(e.name, input, args, kwargs, &budget_);
      RAMI_ASSIGN_OR_RETURN(bool ok, ApplyTest(e.name, input, args, &budget_));
      return Value::Bool(ok != e.negate);
    }
    case Expr::Kind::kUnary: {
      RAMI_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
      if (e.name == "not") return Value::Bool(!v.Truthy());
      if (!v.is_number())
        return Error(e.line,
                     absl::StrCat("bad operand type for unary ", e.name, ": '", v.TypeName(), "'"));
      if (e.name == "+") return v;
      auto negated = Negate(v);
      if (!negated.ok()) return Error(e.line, negated.status().message());
      return negated;
    }
    case Expr::Kind::kBinary:
      return EvalBinary(e);
    case Expr::Kind::kCondition: {
      RAMI_ASSIGN_OR_RETURN(Value cond, Eval(*e.args[0]));
      if (cond.Truthy()) return Eval(*e.args[1]);
      if (e.args[2] == nullptr) return Value();
      return Eval(*e.args[2]);
    }
  }
  return Value();
}

absl::StatusOr<Value> Interpreter::EvalBinary(const Expr& e) {
  RAMI_ASSIGN_OR_RETURN(Value a, Eval(*e.args[0]));
  const std::string& op = e.name;
  if (op == "and") return a.Truthy() ? Eval(*e.args[1]) : a;
  if (op == "or") return a.Truthy() ? a : Eval(*e.args[1]);
  RAMI_ASSIGN_OR_RETURN(Value b, Eval(*e.args[1]));
  if (op == "~") {
    RAMI_ASSIGN_OR_RETURN(std::string text, budget_.Str(a));
    RAMI_ASSIGN_OR_RETURN(const std::string right, budget_.Str(b));
    RAMI_RETURN_IF_ERROR(AtLine(e.line, budget_.ChargeAppend(text.size(), right.size())));
    return Value::String(text + right);
  }
  if (op == "==" || op == "!=") {
    RAMI_ASSIGN_OR_RETURN(bool equal, budget_.Equal(a, b));
    return Value::Bool(equal == (op == "=="));
  }
  if (op == "in" || op == "notin") {
    auto r = CallMethod(b, "__contains__", {a}, {}, &budget_);
    if (!r.ok()) return AtLine(e.line, r.status());
    return Value::Bool(r->Truthy() == (op == "in"));
  }
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    const bool swap = op == ">" || op == "<=";
    auto less = budget_.Less(swap ? b : a, swap ? a : b);
    if (!less.ok()) return AtLine(e.line, less.status());
    return Value::Bool(op == "<" || op == ">" ? *less : !*less);
  }
  if (a.is_undefined()) return Undefined(*e.args[0]);
  if (b.is_undefined()) return Undefined(*e.args[1]);
  auto r = Arithmetic(op, a, b, &budget_);
  if (!r.ok()) return AtLine(e.line, r.status());
  return r;
}

absl::Status Interpreter::EvalArguments(const Expr& e, ValueList* args, KwArgs* kwargs) {
  for (size_t k = 1; k < e.args.size(); ++k) {
    RAMI_ASSIGN_OR_RETURN(Value v, Eval(*e.args[k]));
    args->push_back(std::move(v));
  }
  for (const auto& [key, expr] : e.kwargs) {
    RAMI_ASSIGN_OR_RETURN(Value v, Eval(*expr));
    kwargs->emplace_back(key, std::move(v));
  }
  return absl::OkStatus();
}

absl::StatusOr<Value> Interpreter::EvalCall(const Expr& e) {
  ValueList args;
  KwArgs kwargs;
  RAMI_RETURN_IF_ERROR(EvalArguments(e, &args, &kwargs));
  const Expr& callee = *e.args[0];
  if (callee.kind == Expr::Kind::kGetAttr) {  // obj.method(...)
    RAMI_ASSIGN_OR_RETURN(Value obj, Eval(*callee.args[0]));
    if (obj.is_undefined()) return Undefined(*callee.args[0]);
    const Value member = GetAttribute(obj, callee.name);
    if (member.is_callable()) return member.AsCallable()(args, kwargs);
    auto r = CallMethod(obj, callee.name, args, kwargs, &budget_);
    if (!r.ok()) return AtLine(e.line, r.status());
    return r;
  }
  if (callee.kind == Expr::Kind::kName) {
    const Value fn = Lookup(callee.name);
    if (fn.is_callable()) return fn.AsCallable()(args, kwargs);
    if (fn.is_undefined()) return CallGlobal(callee.name, args, kwargs, e.line);
  }
  RAMI_ASSIGN_OR_RETURN(Value fn, Eval(callee));
  if (!fn.is_callable())
    return Error(e.line, absl::StrCat("'", fn.TypeName(), "' object is not callable"));
  return fn.AsCallable()(args, kwargs);
}

absl::StatusOr<Value> Interpreter::CallGlobal(const std::string& name, const ValueList& args,
                                              const KwArgs& kwargs, int line) {
  if (name == "range") {
    if (args.empty() || args.size() > 3) return Error(line, "range expects 1 to 3 arguments");
    int64_t start = 0, stop = args[0].AsInt(), step = 1;
    if (args.size() >= 2) {
      start = args[0].AsInt();
      stop = args[1].AsInt();
    }
    if (args.size() == 3) step = args[2].AsInt();
    if (step == 0) return Error(line, "range() step must not be zero");
    // The length first, in unsigned arithmetic (stop - start can pass INT64_MAX), so a huge
    // range fails before anything is allocated.
    const bool up = step > 0;
    const uint64_t span = up ? (stop > start ? static_cast<uint64_t>(stop) - start : 0)
                             : (start > stop ? static_cast<uint64_t>(start) - stop : 0);
    const uint64_t stride = up ? static_cast<uint64_t>(step) : 0 - static_cast<uint64_t>(step);
    const uint64_t count = span == 0 ? 0 : (span - 1) / stride + 1;
    RAMI_RETURN_IF_ERROR(AtLine(line, budget_.ChargeList(count)));
    ValueList out;
    out.reserve(count);
    int64_t i = start;
    for (uint64_t k = 0; k < count; ++k) {
      out.push_back(Value::Int(i));
      if (k + 1 < count) i += step;  // stays in [start, stop): no overflow
    }
    return Value::List(std::move(out));
  }
  if (name == "namespace" || name == "dict") {
    ValueDict d;
    for (const Value& a : args) {
      if (a.is_dict())
        for (const auto& [k, v] : a.AsDict().items) d.Set(k, v);
    }
    for (const auto& [k, v] : kwargs) d.Set(k, v);
    Value made = Value::Dict(std::move(d), name == "namespace");
    if (made.is_namespace()) namespaces_.push_back(made);
    return made;
  }
  if (name == "raise_exception") {
    std::string message;
    if (!args.empty()) {
      RAMI_ASSIGN_OR_RETURN(message, budget_.Str(args[0]));
    }
    return absl::InvalidArgumentError(absl::StrCat("chat template raised: ", Quote(message)));
  }
  if (name == "strftime_now") {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    std::string format = "%Y-%m-%d";
    if (!args.empty()) {
      RAMI_ASSIGN_OR_RETURN(format, budget_.Str(args[0]));
    }
    const size_t n = std::strftime(buf, sizeof(buf), format.c_str(), &tm);
    return Value::String(std::string(buf, n));
  }
  return Error(line, absl::StrCat("'", Quote(name), "' is undefined or not callable"));
}

}  // namespace rami::jinja::internal
