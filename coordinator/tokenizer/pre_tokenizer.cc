// tokenizer.json pre-tokenizers (see pre_tokenizer.h).
#include "coordinator/tokenizer/pre_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/status_macros.h"
#include "coordinator/tokenizer/byte_level.h"
#include "coordinator/tokenizer/component_config.h"
#include "coordinator/tokenizer/regex.h"
#include "coordinator/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace rami::tokenizer {
namespace {

using nlohmann::json;

// What happens to the matched delimiters (HF's SplitDelimiterBehavior).
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t start, end;
  bool is_match;
};

// Turns match ranges into a covering list of spans, as HF's Pattern::find_matches does.
std::vector<Span> CoverWithMatches(const std::vector<std::pair<size_t, size_t>>& matches,
                                   size_t size, bool invert) {
  std::vector<Span> spans;
  size_t prev = 0;
  for (const auto& [start, end] : matches) {
    if (prev != start) spans.push_back({prev, start, invert});
    spans.push_back({start, end, !invert});
    prev = end;
  }
  if (prev != size) spans.push_back({prev, size, invert});
  return spans;
}

// Applies a delimiter behavior to covering spans; returns the kept ranges.
std::vector<std::pair<size_t, size_t>> ApplyBehavior(const std::vector<Span>& spans,
                                                     Behavior behavior) {
  std::vector<std::pair<size_t, size_t>> out;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.emplace_back(s.start, s.end);
      }
      break;
    case Behavior::kIsolated:
      for (const Span& s : spans) out.emplace_back(s.start, s.end);
      break;
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;  // walking backwards: "previous" is the next span
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().first = it->start;
        } else {
          out.emplace_back(it->start, it->end);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.start, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
  }
  return out;
}

// Splits every piece with `find` (text -> match ranges) and `behavior`.
void SplitPieces(
    std::vector<TextPiece>* pieces, Behavior behavior, bool invert,
    const std::function<std::vector<std::pair<size_t, size_t>>(const std::string&)>& find) {
  std::vector<TextPiece> out;
  out.reserve(pieces->size() * 2);
  for (TextPiece& piece : *pieces) {
    const auto spans = CoverWithMatches(find(piece.text), piece.text.size(), invert);
    for (const auto& [start, end] : ApplyBehavior(spans, behavior)) {
      if (end > start) {
        out.push_back({piece.text.substr(start, end - start), piece.at_origin && start == 0});
      }
    }
  }
  *pieces = std::move(out);
}

std::vector<std::pair<size_t, size_t>> FindString(const std::string& text,
                                                  const std::string& what) {
  std::vector<std::pair<size_t, size_t>> matches;
  if (what.empty()) return matches;
  for (size_t pos = text.find(what); pos != std::string::npos;
       pos = text.find(what, pos + what.size())) {
    matches.emplace_back(pos, pos + what.size());
  }
  return matches;
}

// Ranges of maximal runs of characters for which `pred` holds, each char its own match when
// `each_char` is set.
std::vector<std::pair<size_t, size_t>> FindChars(const std::string& text,
                                                 const std::function<bool(char32_t)>& pred,
                                                 bool each_char) {
  std::vector<std::pair<size_t, size_t>> matches;
  size_t i = 0;
  while (i < text.size()) {
    size_t len = 0;
    const char32_t cp = Utf8Decode(text, i, &len);
    if (pred(cp)) {
      if (!each_char && !matches.empty() && matches.back().second == i) {
        matches.back().second = i + len;
      } else {
        matches.emplace_back(i, i + len);
      }
    }
    i += len;
  }
  return matches;
}

bool IsPunctuation(char32_t cp) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return (cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO) ||
         (cp < 0x80 && std::ispunct(static_cast<int>(cp)));
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void PreTokenize(std::vector<TextPiece>* pieces) const override {
    SplitPieces(pieces, behavior_, invert_, [this](const std::string& text) {
      return pattern_.regex != nullptr ? pattern_.regex->FindAll(text)
                                       : FindString(text, pattern_.literal);
    });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::unique_ptr<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void PreTokenize(std::vector<TextPiece>* pieces) const override {
    if (add_prefix_space_) {
      for (TextPiece& p : *pieces) {
        if (p.text.empty() || p.text[0] != ' ') p.text = " " + p.text;
      }
    }
    if (regex_ != nullptr) {
      SplitPieces(pieces, Behavior::kIsolated, false,
                  [this](const std::string& text) { return regex_->FindAll(text); });
    }
    const ByteLevelMap& map = ByteLevelMap::Get();
    for (TextPiece& p : *pieces) p.text = map.EncodeBytes(p.text);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;  // null when use_regex is false
};

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  explicit MetaspacePreTokenizer(MetaspaceConfig config) : config_(std::move(config)) {}
  void PreTokenize(std::vector<TextPiece>* pieces) const override {
    const std::string& replacement = config_.replacement;
    for (TextPiece& p : *pieces) {
      if (p.text.find(' ') != std::string::npos) {
        p.text = absl::StrReplaceAll(p.text, {{" ", replacement}});
      }
      const bool starts = p.text.compare(0, replacement.size(), replacement) == 0;
      if (!starts && (config_.prepend_scheme == PrependScheme::kAlways ||
                      (config_.prepend_scheme == PrependScheme::kFirst && p.at_origin))) {
        p.text.insert(0, replacement);
      }
    }
    if (config_.split) {
      SplitPieces(pieces, Behavior::kMergedWithNext, false,
                  [&](const std::string& text) { return FindString(text, replacement); });
    }
  }

 private:
  MetaspaceConfig config_;
};

class CharClassPreTokenizer : public PreTokenizer {
 public:
  CharClassPreTokenizer(std::function<bool(char32_t)> pred, bool each_char, Behavior behavior)
      : pred_(std::move(pred)), each_char_(each_char), behavior_(behavior) {}
  void PreTokenize(std::vector<TextPiece>* pieces) const override {
    SplitPieces(pieces, behavior_, false,
                [this](const std::string& text) { return FindChars(text, pred_, each_char_); });
  }

 private:
  std::function<bool(char32_t)> pred_;
  bool each_char_;
  Behavior behavior_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void PreTokenize(std::vector<TextPiece>* pieces) const override {
    for (const auto& part : parts_) part->PreTokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

absl::StatusOr<Behavior> ParseBehavior(const json& config, const std::string& where) {
  const std::string b = config.value("behavior", std::string("Isolated"));
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat(where, ".behavior: unknown value \"", b, "\""));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const json& config,
                                                               const std::string& where) {
  if (config.is_null()) return std::unique_ptr<PreTokenizer>();
  RAMI_ASSIGN_OR_RETURN(const std::string type, ComponentType(config, where));
  if (type == "Split") {
    RAMI_ASSIGN_OR_RETURN(Behavior behavior, ParseBehavior(config, where));
    RAMI_ASSIGN_OR_RETURN(Pattern pattern, ParsePattern(config, where));
    return std::make_unique<SplitPreTokenizer>(std::move(pattern), behavior,
                                               config.value("invert", false));
  }
  if (type == "ByteLevel") {
    std::unique_ptr<Regex> regex;
    if (config.value("use_regex", true)) {
      RAMI_ASSIGN_OR_RETURN(regex, Regex::Compile(kGpt2Pattern));
    }
    return std::make_unique<ByteLevelPreTokenizer>(config.value("add_prefix_space", true),
                                                   std::move(regex));
  }
  if (type == "Metaspace") {
    RAMI_ASSIGN_OR_RETURN(MetaspaceConfig metaspace, ParseMetaspace(config, where));
    return std::make_unique<MetaspacePreTokenizer>(std::move(metaspace));
  }
  if (type == "Digits") {
    return std::make_unique<CharClassPreTokenizer>(
        [](char32_t c) {
          return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND;
        },
        config.value("individual_digits", false), Behavior::kIsolated);
  }
  if (type == "Punctuation") {
    RAMI_ASSIGN_OR_RETURN(Behavior behavior, ParseBehavior(config, where));
    return std::make_unique<CharClassPreTokenizer>(IsPunctuation, true, behavior);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<CharClassPreTokenizer>(IsUnicodeWhitespace, false, Behavior::kRemoved);
  }
  if (type == "Sequence") {
    RAMI_ASSIGN_OR_RETURN(
        auto parts, MakeSequence<PreTokenizer>(config, "pretokenizers", where, MakePreTokenizer));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  return absl::UnimplementedError(
      absl::StrCat(where, ": pre-tokenizer type \"", type, "\" is not supported"));
}

}  // namespace rami::tokenizer
