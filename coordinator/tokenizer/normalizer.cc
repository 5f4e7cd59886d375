// tokenizer.json normalizers (see normalizer.h).
#include "coordinator/tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "coordinator/tokenizer/component_config.h"
#include "coordinator/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace rami::tokenizer {
namespace {

using nlohmann::json;

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  void Normalize(std::string* text) const override {
    if (text->empty()) return;
    // Pure ASCII is invariant under every normalization form: skip the library call.
    bool ascii = true;
    for (unsigned char c : *text) ascii &= c < 0x80;
    if (ascii) return;
    utf8proc_uint8_t* out = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text->data()),
                                static_cast<utf8proc_ssize_t>(text->size()), &out,
                                static_cast<utf8proc_option_t>(options_));
    if (n >= 0) text->assign(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    std::free(out);
  }

 private:
  int options_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  void Normalize(std::string* text) const override {
    std::string out;
    out.reserve(text->size());
    size_t i = 0;
    while (i < text->size()) {
      size_t len = 0;
      const char32_t cp = Utf8Decode(*text, i, &len);
      Utf8Append(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), &out);
      i += len;
    }
    *text = std::move(out);
  }
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void Normalize(std::string* text) const override {
    if (!text->empty()) text->insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  explicit ReplaceNormalizer(ReplaceRule rule) : rule_(std::move(rule)) {}
  void Normalize(std::string* text) const override { rule_.Apply(text); }

 private:
  ReplaceRule rule_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* text) const override {
    const size_t begin = left_ ? LeadingWhitespaceBytes(*text) : 0;
    const std::string_view rest = std::string_view(*text).substr(begin);
    const size_t end = begin + (right_ ? TrailingWhitespaceStart(rest) : rest.size());
    *text = text->substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void Normalize(std::string* text) const override {
    for (const auto& part : parts_) part->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const json& config,
                                                           const std::string& where) {
  if (config.is_null()) return std::unique_ptr<Normalizer>();
  RAMI_ASSIGN_OR_RETURN(const std::string type, ComponentType(config, where));
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (type == "NFD")
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  if (type == "NFKC") {
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                                               UTF8PROC_COMPAT);
  }
  if (type == "NFKD") {
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE |
                                               UTF8PROC_COMPAT);
  }
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Prepend") {
    RAMI_ASSIGN_OR_RETURN(std::string prefix, RequiredString(config, "prepend", where));
    return std::make_unique<PrependNormalizer>(std::move(prefix));
  }
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(config.value("strip_left", false),
                                             config.value("strip_right", false));
  }
  if (type == "Replace") {
    RAMI_ASSIGN_OR_RETURN(ReplaceRule rule, ReplaceRule::FromJson(config, where));
    return std::make_unique<ReplaceNormalizer>(std::move(rule));
  }
  if (type == "Sequence") {
    RAMI_ASSIGN_OR_RETURN(auto parts,
                          MakeSequence<Normalizer>(config, "normalizers", where, MakeNormalizer));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  return absl::UnimplementedError(
      absl::StrCat(where, ": normalizer type \"", type, "\" is not supported"));
}

}  // namespace rami::tokenizer
