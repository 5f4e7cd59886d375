// A model's chat template: the Jinja `chat_template` of tokenizer_config.json (or the
// chat_template.jinja file beside it), rendered as transformers' apply_chat_template does:
// trim_blocks + lstrip_blocks, variables messages / tools / add_generation_prompt, the
// tokenizer's special tokens (bos_token, eos_token, ...) and any extra variables such as
// Qwen3's enable_thinking.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/chat/jinja_template.h"
#include "nlohmann/json.hpp"

namespace rami::chat {

struct ChatTemplateInput {
  // Ordered JSON: key order shows in tojson output, so it must be the client's order.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{"role", "content"}]
  nlohmann::ordered_json tools;  // null or a list of tool schemas
  bool add_generation_prompt = false;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // {"enable_thinking": false}
};

class ChatTemplate {
 public:
  // From a model directory: chat_template.jinja if present, else tokenizer_config.json's
  // chat_template (a string, or a list of {name, template} where `name` is picked).
  static absl::StatusOr<ChatTemplate> FromDirectory(const std::string& dir,
                                                    const std::string& name = "default");
  static absl::StatusOr<ChatTemplate> FromTokenizerConfig(const nlohmann::json& config,
                                                          const std::string& name = "default");
  // From template source and the special tokens the template may reference.
  static absl::StatusOr<ChatTemplate> FromSource(std::string_view source,
                                                 std::map<std::string, std::string> special_tokens);

  // Renders within `limits` (jinja_limits.h): a template or input that would pass one fails
  // with ResourceExhausted naming it.
  absl::StatusOr<std::string> Apply(const ChatTemplateInput& input,
                                    const jinja::RenderLimits& limits = {}) const;

 private:
  jinja::Template template_;
  std::map<std::string, std::string> special_tokens_;
};

}  // namespace rami::chat
