// Chat templates (see chat_template.h).
#include "coordinator/chat/chat_template.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace rami::chat {
namespace {

using nlohmann::json;

// tokenizer_config.json writes special tokens as "text" or {"content": "text", ...}.
std::map<std::string, std::string> SpecialTokens(const json& config) {
  std::map<std::string, std::string> out;
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token",
                          "cls_token", "mask_token"}) {
    if (!config.contains(key)) continue;
    const json& v = config[key];
    if (v.is_string()) out[key] = v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) {
      out[key] = v["content"].get<std::string>();
    }
  }
  return out;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::FromDirectory(const std::string& dir,
                                                         const std::string& name) {
  std::string config_text, source;
  json config = json::object();
  if (ReadFile(dir + "/tokenizer_config.json", &config_text)) {
    config = json::parse(config_text, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/tokenizer_config.json: not a JSON object"));
    }
  }
  if (ReadFile(dir + "/chat_template.jinja", &source)) {
    auto t = FromSource(source, SpecialTokens(config));
    if (!t.ok())
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/chat_template.jinja: ", t.status().message()));
    return t;
  }
  auto t = FromTokenizerConfig(config, name);
  if (!t.ok()) {
    return absl::Status(t.status().code(),
                        absl::StrCat(dir, "/tokenizer_config.json: ", t.status().message()));
  }
  return t;
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromTokenizerConfig(const json& config,
                                                               const std::string& name) {
  if (!config.is_object() || !config.contains("chat_template")) {
    return absl::NotFoundError("no chat_template");
  }
  const json& field = config["chat_template"];
  std::string source;
  if (field.is_string()) {
    source = field.get<std::string>();
  } else if (field.is_array()) {
    for (const json& item : field) {
      if (item.is_object() && item.contains("name") && item["name"] == name &&
          item.contains("template") && item["template"].is_string()) {
        source = item["template"].get<std::string>();
      }
    }
    if (source.empty())
      return absl::NotFoundError(
          absl::StrCat("chat_template has no template named \"", name, "\""));
  } else {
    return absl::InvalidArgumentError(
        "chat_template: expected a string or a list of {name, template}");
  }
  auto t = FromSource(source, SpecialTokens(config));
  if (!t.ok())
    return absl::InvalidArgumentError(absl::StrCat("chat_template: ", t.status().message()));
  return t;
}

absl::StatusOr<ChatTemplate> ChatTemplate::FromSource(
    std::string_view source, std::map<std::string, std::string> special_tokens) {
  jinja::LexOptions options;
  options.trim_blocks = true;  // transformers' ImmutableSandboxedEnvironment settings
  options.lstrip_blocks = true;
  ChatTemplate t;
  RAMI_ASSIGN_OR_RETURN(t.template_, jinja::Template::Parse(source, options));
  t.special_tokens_ = std::move(special_tokens);
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Apply(const ChatTemplateInput& input,
                                                const jinja::RenderLimits& limits) const {
  if (!input.messages.is_array()) return absl::InvalidArgumentError("messages: expected a list");
  if (!input.tools.is_null() && !input.tools.is_array()) {
    return absl::InvalidArgumentError("tools: expected a list");
  }
  if (!input.extra.is_object())
    return absl::InvalidArgumentError("extra template variables: expected an object");
  jinja::ValueDict context;
  for (const auto& [key, value] : special_tokens_) context.Set(key, jinja::Value::String(value));
  context.Set("messages", jinja::Value::FromJson(input.messages));
  context.Set("tools", jinja::Value::FromJson(input.tools));
  context.Set("documents", jinja::Value::None());
  context.Set("add_generation_prompt", jinja::Value::Bool(input.add_generation_prompt));
  for (const auto& [key, value] : input.extra.items())
    context.Set(key, jinja::Value::FromJson(value));
  return template_.Render(context, limits);
}

}  // namespace rami::chat
