// tokenizer.json component objects (see component_config.h).
#include "coordinator/tokenizer/component_config.h"

#include "absl/strings/str_replace.h"

namespace rami::tokenizer {

using nlohmann::json;

absl::StatusOr<std::string> ComponentType(const json& config, const std::string& where) {
  if (!config.is_object() || !config.contains("type") || !config["type"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object with a \"type\""));
  }
  return config["type"].get<std::string>();
}

absl::StatusOr<std::string> RequiredString(const json& config, const char* key,
                                           const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || !it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": expected a string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<Pattern> ParsePattern(const json& config, const std::string& where) {
  const json& pattern = config.contains("pattern") ? config["pattern"] : json();
  Pattern out;
  if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
    auto regex = Regex::Compile(pattern["Regex"].get<std::string>());
    if (!regex.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".pattern: ", regex.status().message()));
    }
    out.regex = std::move(regex).value();
    return out;
  }
  if (pattern.contains("String") && pattern["String"].is_string()) {
    out.literal = pattern["String"].get<std::string>();
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ".pattern: expected String or Regex"));
}

absl::StatusOr<ReplaceRule> ReplaceRule::FromJson(const json& config, const std::string& where) {
  ReplaceRule rule;
  RAMI_ASSIGN_OR_RETURN(rule.content_, RequiredString(config, "content", where));
  RAMI_ASSIGN_OR_RETURN(rule.pattern_, ParsePattern(config, where));
  return rule;
}

void ReplaceRule::Apply(std::string* text) const {
  if (pattern_.regex != nullptr) {
    *text = pattern_.regex->ReplaceAll(*text, content_);
  } else if (!pattern_.literal.empty() && text->find(pattern_.literal) != std::string::npos) {
    *text = absl::StrReplaceAll(*text, {{pattern_.literal, content_}});
  }
}

absl::StatusOr<MetaspaceConfig> ParseMetaspace(const json& config, const std::string& where) {
  MetaspaceConfig out;
  out.replacement = config.value("replacement", std::string("\xE2\x96\x81"));  // "▁"
  out.split = config.value("split", true);
  std::string scheme = config.value("prepend_scheme", std::string());
  if (scheme.empty()) scheme = config.value("add_prefix_space", true) ? "always" : "never";
  if (scheme == "always") {
    out.prepend_scheme = PrependScheme::kAlways;
  } else if (scheme == "first") {
    out.prepend_scheme = PrependScheme::kFirst;
  } else if (scheme == "never") {
    out.prepend_scheme = PrependScheme::kNever;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".prepend_scheme: unknown \"", scheme, "\""));
  }
  return out;
}

}  // namespace rami::tokenizer
