// A parsed Jinja template and its tree-walking interpreter: statements (if, for with loop.*,
// set, namespace, macros, filter blocks, break/continue) and Python-semantics expressions.
// Parsing is bounded by kMaxParseDepth and rendering by RenderLimits (jinja_limits.h), so a
// hostile template fails with an error instead of crashing or exhausting the coordinator.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/chat/jinja_ast.h"
#include "coordinator/chat/jinja_lexer.h"
#include "coordinator/chat/jinja_limits.h"
#include "coordinator/chat/jinja_value.h"

namespace rami::jinja {

class Template {
 public:
  // Parses `source`; unknown tags, filters and tests are errors here, not at render time.
  static absl::StatusOr<Template> Parse(std::string_view source, const LexOptions& options);

  // Renders with `context` as the template's variables. Besides them the template sees
  // range, namespace, dict, raise_exception and strftime_now.
  // Fails with ResourceExhausted once a limit is reached, naming the limit.
  absl::StatusOr<std::string> Render(const ValueDict& context,
                                     const RenderLimits& limits = RenderLimits()) const;

 private:
  Body body_;
};

}  // namespace rami::jinja
