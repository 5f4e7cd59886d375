// Reading tokenizer.json's component objects ("normalizer", "pre_tokenizer", "decoder"). Their
// builders share the same pieces: the "type" tag, required strings, "Sequence" arrays of
// sub-components, String-or-Regex patterns, HF's Replace rule and Metaspace's options. Every
// error names the field it is about (`where`, e.g. "pre_tokenizer.pretokenizers[1].pattern").
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "coordinator/tokenizer/regex.h"
#include "nlohmann/json.hpp"

namespace rami::tokenizer {

// The "type" of a component object; an error unless `config` is an object with a string type.
absl::StatusOr<std::string> ComponentType(const nlohmann::json& config, const std::string& where);

// config[key] as a string; an error naming `where`.key otherwise.
absl::StatusOr<std::string> RequiredString(const nlohmann::json& config, const char* key,
                                           const std::string& where);

// A Split / Replace "pattern": {"String": literal} or {"Regex": Oniguruma source}.
struct Pattern {
  std::string literal;           // used when regex is null
  std::unique_ptr<Regex> regex;  // null for a String pattern
};
absl::StatusOr<Pattern> ParsePattern(const nlohmann::json& config, const std::string& where);

// HF's Replace, which is both a normalizer and a decoder: every match of "pattern" in a text
// becomes "content".
class ReplaceRule {
 public:
  static absl::StatusOr<ReplaceRule> FromJson(const nlohmann::json& config,
                                              const std::string& where);
  void Apply(std::string* text) const;

 private:
  Pattern pattern_;
  std::string content_;
};

// Metaspace (pre-tokenizer and decoder): spaces become `replacement` ("▁"), which is also
// prepended to the text per `prepend_scheme`.
enum class PrependScheme { kAlways, kFirst, kNever };
struct MetaspaceConfig {
  std::string replacement;
  PrependScheme prepend_scheme;
  bool split;  // pre-tokenizer: also split the text on `replacement`
};
// Files written before "prepend_scheme" existed say add_prefix_space (true: always).
absl::StatusOr<MetaspaceConfig> ParseMetaspace(const nlohmann::json& config,
                                               const std::string& where);

// HF's Sequence: builds each element of the array config[key] with `make` (a Make* function
// taking (json, where)); elements that build to null (a null JSON) are dropped.
template <typename Component, typename MakeFn>
absl::StatusOr<std::vector<std::unique_ptr<Component>>> MakeSequence(const nlohmann::json& config,
                                                                     const char* key,
                                                                     const std::string& where,
                                                                     MakeFn make) {
  if (!config.contains(key) || !config[key].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": expected an array"));
  }
  std::vector<std::unique_ptr<Component>> parts;
  for (size_t i = 0; i < config[key].size(); ++i) {
    RAMI_ASSIGN_OR_RETURN(std::unique_ptr<Component> part,
                          make(config[key][i], absl::StrCat(where, ".", key, "[", i, "]")));
    if (part != nullptr) parts.push_back(std::move(part));
  }
  return parts;
}

}  // namespace rami::tokenizer
