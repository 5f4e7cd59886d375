// Expression evaluation of rami's Jinja interpreter (see jinja_interpreter.h): Python
// semantics for operators, attribute/item access, calls of globals, macros and methods.
#include <cmath>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "coordinator/chat/jinja_builtins.h"
#include "coordinator/chat/jinja_interpreter.h"

namespace rami::jinja::internal {
namespace {

absl::Status Undefined(const Expr& e) {
  std::string what = e.kind == Expr::Kind::kName ? absl::StrCat("'", e.name, "' is undefined")
                                                 : "value is undefined";
  return absl::InvalidArgumentError(what);
}

absl::StatusOr<Value> Arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value::String(a.AsString() + b.AsString());
    if (a.is_list() && b.is_list()) {
      ValueList out = a.AsList();
      out.insert(out.end(), b.AsList().begin(), b.AsList().end());
      return Value::List(std::move(out));
    }
  }
  if (op == "*" && ((a.is_string() && b.is_int()) || (a.is_int() && b.is_string()))) {
    const Value& s = a.is_string() ? a : b;
    std::string out;
    for (int64_t k = 0; k < (a.is_string() ? b : a).AsInt(); ++k) out += s.AsString();
    return Value::String(out);
  }
  if (op == "%" && a.is_string()) return PercentFormat(a.AsString(), b);
  if (!a.is_number() || !b.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported operand type(s) for ", op, ": '",
                                                   a.TypeName(), "' and '", b.TypeName(), "'"));
  }
  const bool floats = a.is_float() || b.is_float();
  if (op == "/") {
    if (b.AsFloat() == 0) return absl::InvalidArgumentError("division by zero");
    return Value::Float(a.AsFloat() / b.AsFloat());
  }
  if (op == "**") {
    if (!floats && b.AsInt() >= 0)
      return Value::Int(static_cast<int64_t>(std::pow(a.AsInt(), b.AsInt())));
    return Value::Float(std::pow(a.AsFloat(), b.AsFloat()));
  }
  if (floats) {
    const double x = a.AsFloat(), y = b.AsFloat();
    if (op == "+") return Value::Float(x + y);
    if (op == "-") return Value::Float(x - y);
    if (op == "*") return Value::Float(x * y);
    if (y == 0) return absl::InvalidArgumentError("division by zero");
    if (op == "//") return Value::Float(std::floor(x / y));
    if (op == "%") return Value::Float(x - std::floor(x / y) * y);
  } else {
    const int64_t x = a.AsInt(), y = b.AsInt();
    if (op == "+") return Value::Int(x + y);
    if (op == "-") return Value::Int(x - y);
    if (op == "*") return Value::Int(x * y);
    if (y == 0) return absl::InvalidArgumentError("division by zero");
    const int64_t q = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));  // floor division
    if (op == "//") return Value::Int(q);
    if (op == "%") return Value::Int(x - q * y);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown operator ", op));
}

}  // namespace

absl::StatusOr<Value> Interpreter::Eval(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      if (e.name == "__filter_input__" && filter_input_ != nullptr) return *filter_input_;
      return e.value;
    case Expr::Kind::kName:
      return Lookup(e.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      ValueList items;
      for (const ExprPtr& a : e.args) {
        RAMI_ASSIGN_OR_RETURN(Value v, Eval(*a));
        items.push_back(std::move(v));
      }
      return Value::List(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
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
      return GetItem(obj, key);
    }
    case Expr::Kind::kSlice: {
      RAMI_ASSIGN_OR_RETURN(Value obj, Eval(*e.args[0]));
      Value parts[3];
      for (int k = 0; k < 3; ++k) {
        if (e.args[k + 1] != nullptr) {
          RAMI_ASSIGN_OR_RETURN(parts[k], Eval(*e.args[k + 1]));
        }
      }
      return Slice(obj, parts[0], parts[1], parts[2]);
    }
    case Expr::Kind::kCall:
      return EvalCall(e);
    case Expr::Kind::kFilter:
    case Expr::Kind::kTest: {
      RAMI_ASSIGN_OR_RETURN(Value input, Eval(*e.args[0]));
      ValueList args;
      KwArgs kwargs;
      RAMI_RETURN_IF_ERROR(EvalArguments(e, &args, &kwargs));
      if (e.kind == Expr::Kind::kFilter) return ApplyFilter(e.name, input, args, kwargs);
      RAMI_ASSIGN_OR_RETURN(bool ok, ApplyTest(e.name, input, args));
      return Value::Bool(ok != e.negate);
    }
    case Expr::Kind::kUnary: {
      RAMI_ASSIGN_OR_RETURN(Value v, Eval(*e.args[0]));
      if (e.name == "not") return Value::Bool(!v.Truthy());
      if (!v.is_number())
        return Error(e.line,
                     absl::StrCat("bad operand type for unary ", e.name, ": '", v.TypeName(), "'"));
      if (e.name == "+") return v;
      return v.is_float() ? Value::Float(-v.AsFloat()) : Value::Int(-v.AsInt());
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
  if (op == "~") return Value::String(a.Str() + b.Str());
  if (op == "==") return Value::Bool(a == b);
  if (op == "!=") return Value::Bool(a != b);
  if (op == "in" || op == "notin") {
    auto r = CallMethod(b, "__contains__", {a}, {});
    if (!r.ok()) return Error(e.line, r.status().message());
    return Value::Bool(r->Truthy() == (op == "in"));
  }
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    const bool swap = op == ">" || op == "<=";
    auto less = Value::Less(swap ? b : a, swap ? a : b);
    if (!less.ok()) return Error(e.line, less.status().message());
    return Value::Bool(op == "<" || op == ">" ? *less : !*less);
  }
  if (a.is_undefined()) return Undefined(*e.args[0]);
  if (b.is_undefined()) return Undefined(*e.args[1]);
  auto r = Arithmetic(op, a, b);
  if (!r.ok()) return Error(e.line, r.status().message());
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
    auto r = CallMethod(obj, callee.name, args, kwargs);
    if (!r.ok()) return Error(e.line, r.status().message());
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
    ValueList out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.size() > static_cast<size_t>(kMaxIterations)) return Error(line, "range too large");
      out.push_back(Value::Int(i));
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
    return Value::Dict(std::move(d), name == "namespace");
  }
  if (name == "raise_exception") {
    return absl::InvalidArgumentError(
        absl::StrCat("chat template raised: ", args.empty() ? "" : args[0].Str()));
  }
  if (name == "strftime_now") {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    const size_t n =
        std::strftime(buf, sizeof(buf), args.empty() ? "%Y-%m-%d" : args[0].Str().c_str(), &tm);
    return Value::String(std::string(buf, n));
  }
  return Error(line, absl::StrCat("'", name, "' is undefined or not callable"));
}

}  // namespace rami::jinja::internal
