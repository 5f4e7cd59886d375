// Jinja interpreter (see jinja_template.h).
#include "coordinator/chat/jinja_template.h"

#include <ctime>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "coordinator/chat/jinja_builtins.h"
#include "coordinator/chat/jinja_interpreter.h"
#include "coordinator/chat/jinja_parser.h"

namespace rami::jinja {
namespace internal {

Interpreter::~Interpreter() {
  for (const Value& ns : namespaces_) ns.MutableDict().items.clear();
}

absl::Status Interpreter::Enter(int line) {
  RAMI_RETURN_IF_ERROR(AtLine(line, budget_.ChargeSteps(1)));
  if (depth_ > budget_.limits().max_depth) {
    return absl::ResourceExhaustedError(
        absl::StrCat("template line ", line,
                     ": evaluation nested too deeply: exceeds the render "
                     "limit max_depth = ",
                     budget_.limits().max_depth));
  }
  return absl::OkStatus();
}

absl::Status Interpreter::EmitText(int line, std::string_view text, std::string* out) {
  RAMI_RETURN_IF_ERROR(AtLine(line, budget_.ChargeAppend(out->size(), text.size())));
  out->append(text);
  return absl::OkStatus();
}

absl::Status Interpreter::Emit(int line, const Value& v, std::string* out) {
  if (v.is_string()) return EmitText(line, v.AsString(), out);
  const size_t before = out->size();
  if (!v.AppendStr(out, budget_.limits().max_output_bytes)) {
    out->resize(before);
    return AtLine(line, budget_.ChargeAppend(before, UINT64_MAX));
  }
  return AtLine(line, budget_.ChargeAppend(before, out->size() - before));
}

Value Interpreter::Lookup(const std::string& name) const {
  for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
    if (const Value* v = (*it)->Find(name)) return *v;
  }
  return Value();
}

absl::StatusOr<Flow> Interpreter::Exec(const Body& body, std::string* out) {
  for (const StmtPtr& s : body) {
    RAMI_ASSIGN_OR_RETURN(Flow flow, ExecStmt(*s, out));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

// Long on purpose (~75 lines): the dispatch over statement kinds, one short case each; loops
// and macros call out.
absl::StatusOr<Flow> Interpreter::ExecStmt(const Stmt& s, std::string* out) {
  Level level(&depth_);
  RAMI_RETURN_IF_ERROR(Enter(s.line));
  switch (s.kind) {
    case Stmt::Kind::kText:
      RAMI_RETURN_IF_ERROR(EmitText(s.line, s.text, out));
      return Flow::kNormal;
    case Stmt::Kind::kOutput: {
      auto v = Eval(*s.expr);
      RAMI_RETURN_IF_ERROR(AtLine(s.line, v.status()));
      RAMI_RETURN_IF_ERROR(Emit(s.line, *v, out));
      return Flow::kNormal;
    }
    case Stmt::Kind::kIf:
      for (const auto& [cond, body] : s.branches) {
        auto c = Eval(*cond);
        RAMI_RETURN_IF_ERROR(AtLine(s.line, c.status()));
        if (c->Truthy()) return Exec(body, out);
      }
      return Exec(s.else_body, out);
    case Stmt::Kind::kFor:
      RAMI_RETURN_IF_ERROR(ExecFor(s, out));
      return Flow::kNormal;
    case Stmt::Kind::kSet: {
      auto v = Eval(*s.expr);
      RAMI_RETURN_IF_ERROR(AtLine(s.line, v.status()));
      if (!s.attr.empty()) {
        const Value ns = Lookup(s.targets[0]);
        if (!ns.is_namespace())
          return Error(s.line, absl::StrCat("cannot set attribute of '", Quote(s.targets[0]),
                                            "': not a namespace"));
        ns.MutableDict().Set(s.attr, *v);
      } else if (s.targets.size() == 1) {
        Assign(s.targets[0], *v);
      } else {
        auto items = budget_.Items(*v);
        RAMI_RETURN_IF_ERROR(AtLine(s.line, items.status()));
        if (items->size() != s.targets.size())
          return Error(s.line, "wrong number of values to unpack");
        for (size_t k = 0; k < s.targets.size(); ++k) Assign(s.targets[k], (*items)[k]);
      }
      return Flow::kNormal;
    }
    case Stmt::Kind::kSetBlock: {
      std::string captured;
      RAMI_RETURN_IF_ERROR(Exec(s.body, &captured).status());
      Assign(s.targets[0], Value::String(captured));
      return Flow::kNormal;
    }
    case Stmt::Kind::kMacro: {
      RAMI_ASSIGN_OR_RETURN(Value macro, MakeMacro(s));
      Assign(s.text, macro);
      return Flow::kNormal;
    }
    case Stmt::Kind::kFilterBlock: {
      std::string captured;
      RAMI_RETURN_IF_ERROR(Exec(s.body, &captured).status());
      const Value input = Value::String(captured);
      filter_input_ = &input;
      auto v = Eval(*s.expr);
      filter_input_ = nullptr;
      RAMI_RETURN_IF_ERROR(AtLine(s.line, v.status()));
      RAMI_RETURN_IF_ERROR(Emit(s.line, *v, out));
      return Flow::kNormal;
    }
    case Stmt::Kind::kBreak:
      return Flow::kBreak;
    case Stmt::Kind::kContinue:
      return Flow::kContinue;
    case Stmt::Kind::kScope:
      return Exec(s.body, out);
  }
  return Flow::kNormal;
}

// Long on purpose (~75 lines): Jinja's for-loop semantics in one place — the iterable, the
// inline filter, unpacking, the `loop` object, `else`, break/continue and the limits.
absl::Status Interpreter::ExecFor(const Stmt& s, std::string* out) {
  auto iterable = Eval(*s.expr);
  RAMI_RETURN_IF_ERROR(AtLine(s.line, iterable.status()));
  auto all = budget_.Items(*iterable);
  RAMI_RETURN_IF_ERROR(AtLine(s.line, all.status()));
  ValueList items;
  // The loop filter runs with the loop variables bound, before loop.* is computed.
  for (const Value& item : *all) {
    if (s.filter == nullptr) {
      items.push_back(item);
      continue;
    }
    scopes_.push_back(std::make_shared<ValueDict>());
    absl::Status bind = absl::OkStatus();
    if (s.targets.size() == 1) {
      Assign(s.targets[0], item);
    } else {
      auto parts = budget_.Items(item);
      for (size_t k = 0; parts.ok() && k < s.targets.size() && k < parts->size(); ++k)
        Assign(s.targets[k], (*parts)[k]);
    }
    auto keep = Eval(*s.filter);
    scopes_.pop_back();
    RAMI_RETURN_IF_ERROR(AtLine(s.line, keep.status()));
    if (keep->Truthy()) items.push_back(item);
  }
  if (items.empty()) {
    RAMI_RETURN_IF_ERROR(Exec(s.else_body, out).status());
    return absl::OkStatus();
  }
  const auto n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    if (++iterations_ > budget_.limits().max_loop_iterations) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "template line ", s.line, ": too many loop iterations: exceeds the render limit ",
          "max_loop_iterations = ", budget_.limits().max_loop_iterations));
    }
    scopes_.push_back(std::make_shared<ValueDict>());
    ValueDict loop;
    loop.Set("index", Value::Int(i + 1));
    loop.Set("index0", Value::Int(i));
    loop.Set("revindex", Value::Int(n - i));
    loop.Set("revindex0", Value::Int(n - i - 1));
    loop.Set("first", Value::Bool(i == 0));
    loop.Set("last", Value::Bool(i == n - 1));
    loop.Set("length", Value::Int(n));
    loop.Set("depth", Value::Int(1));
    loop.Set("depth0", Value::Int(0));
    loop.Set("previtem", i > 0 ? items[i - 1] : Value());
    loop.Set("nextitem", i + 1 < n ? items[i + 1] : Value());
    loop.Set("cycle",
             Value::Function([i](const ValueList& args, const KwArgs&) -> absl::StatusOr<Value> {
               if (args.empty())
                 return absl::InvalidArgumentError("loop.cycle needs at least one value");
               return args[i % args.size()];
             }));
    Assign("loop", Value::Dict(std::move(loop)));
    if (s.targets.size() == 1) {
      Assign(s.targets[0], items[i]);
    } else {
      auto parts = budget_.Items(items[i]);
      RAMI_RETURN_IF_ERROR(AtLine(s.line, parts.status()));
      if (parts->size() != s.targets.size())
        return Error(s.line, "wrong number of values to unpack in for loop");
      for (size_t k = 0; k < s.targets.size(); ++k) Assign(s.targets[k], (*parts)[k]);
    }
    auto flow = Exec(s.body, out);
    scopes_.pop_back();
    RAMI_RETURN_IF_ERROR(flow.status());
    if (*flow == Flow::kBreak) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<Value> Interpreter::MakeMacro(const Stmt& s) {
  // Defaults are evaluated at call time, in the caller's scope (as jinja2 does).
  const Stmt* macro = &s;
  return Value::Function(
      [this, macro](const ValueList& args, const KwArgs& kwargs) -> absl::StatusOr<Value> {
        auto frame = std::make_shared<ValueDict>();
        for (size_t k = 0; k < macro->params.size(); ++k) {
          const auto& [param, dflt] = macro->params[k];
          Value v;
          if (k < args.size()) {
            v = args[k];
          } else {
            bool found = false;
            for (const auto& [key, val] : kwargs) {
              if (key == param) {
                v = val;
                found = true;
              }
            }
            if (!found && dflt != nullptr) {
              RAMI_ASSIGN_OR_RETURN(v, Eval(*dflt));
            }
          }
          frame->Set(param, v);
        }
        scopes_.push_back(frame);
        std::string out;
        auto flow = Exec(macro->body, &out);
        scopes_.pop_back();
        RAMI_RETURN_IF_ERROR(flow.status());
        return Value::String(out);
      });
}

}  // namespace internal

absl::StatusOr<Template> Template::Parse(std::string_view source, const LexOptions& options) {
  RAMI_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source, options));
  Template t;
  RAMI_ASSIGN_OR_RETURN(t.body_, jinja::Parse(tokens));
  return t;
}

absl::StatusOr<std::string> Template::Render(const ValueDict& context,
                                             const RenderLimits& limits) const {
  internal::Interpreter interpreter(context, limits);
  std::string out;
  RAMI_RETURN_IF_ERROR(interpreter.Exec(body_, &out).status());
  return out;
}

}  // namespace rami::jinja
