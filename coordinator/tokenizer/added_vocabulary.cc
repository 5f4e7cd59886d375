// Added-token matching (see added_vocabulary.h). Mirrors HF AddedVocabulary::find_matches.
#include "coordinator/tokenizer/added_vocabulary.h"

#include <utf8proc.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "coordinator/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace rami::tokenizer {
namespace {

using nlohmann::json;

// Rust regex's Unicode \w (HF tests single_word tokens with ^\w / \w$): Alphabetic, marks,
// decimal digits, connector punctuation and the joiners ZWNJ/ZWJ.
bool IsWordChar(char32_t c) {
  if (c == 0x200C || c == 0x200D) return true;
  if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F189)) return true;  // Ⓐ, 🄰
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

}  // namespace

void AddedVocabulary::Matcher::Build() {
  nodes.assign(1, Node());
  for (size_t p = 0; p < patterns.size(); ++p) {
    const std::string& pat = patterns[p];
    if (pat.empty()) continue;
    first_byte[static_cast<unsigned char>(pat[0])] = true;
    int32_t node = 0;
    for (unsigned char c : pat) {
      auto it = nodes[node].next.find(c);
      if (it == nodes[node].next.end()) {
        nodes.emplace_back();
        const auto child = static_cast<int32_t>(nodes.size() - 1);
        nodes[node].next[c] = child;
        node = child;
      } else {
        node = it->second;
      }
    }
    if (nodes[node].pattern < 0) nodes[node].pattern = static_cast<int32_t>(p);
  }
}

absl::StatusOr<AddedVocabulary> AddedVocabulary::FromJson(const json& added_tokens,
                                                          const Normalizer* normalizer) {
  AddedVocabulary vocab;
  if (added_tokens.is_null()) return vocab;
  if (!added_tokens.is_array())
    return absl::InvalidArgumentError("added_tokens: expected an array");
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const json& t = added_tokens[i];
    const std::string where = absl::StrCat("added_tokens[", i, "]");
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() ||
        !t.contains("content") || !t["content"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected {\"id\": int, \"content\": string, ...}"));
    }
    AddedToken token;
    token.id = t["id"].get<int32_t>();
    token.content = t["content"].get<std::string>();
    if (token.id < 0 || token.content.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": negative id or empty content"));
    }
    token.special = t.value("special", false);
    token.normalized = t.value("normalized", !token.special);
    token.lstrip = t.value("lstrip", false);
    token.rstrip = t.value("rstrip", false);
    token.single_word = t.value("single_word", false);
    const size_t index = vocab.tokens_.size();
    vocab.by_id_[token.id] = index;
    vocab.by_content_[token.content] = index;
    Matcher& m = token.normalized ? vocab.normalized_ : vocab.raw_;
    std::string pattern = token.content;
    if (token.normalized && normalizer != nullptr) normalizer->Normalize(&pattern);
    m.patterns.push_back(pattern);
    m.token_index.push_back(static_cast<int32_t>(index));
    vocab.tokens_.push_back(std::move(token));
  }
  vocab.raw_.Build();
  vocab.normalized_.Build();
  return vocab;
}

const AddedToken* AddedVocabulary::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::FindByContent(std::string_view content) const {
  auto it = by_content_.find(absl::string_view(content.data(), content.size()));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

std::vector<AddedSplit> AddedVocabulary::Split(std::string_view text, const Matcher& m) const {
  std::vector<AddedSplit> splits;
  size_t start_offset = 0;  // end of the last emitted split
  size_t pos = 0;           // where the next leftmost-longest search starts
  while (!m.patterns.empty() && pos < text.size()) {
    if (!m.first_byte[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    // Longest pattern starting at pos.
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t k = pos; k < text.size(); ++k) {
      auto it = m.nodes[node].next.find(static_cast<unsigned char>(text[k]));
      if (it == m.nodes[node].next.end()) break;
      node = it->second;
      if (m.nodes[node].pattern >= 0) {
        best = m.nodes[node].pattern;
        best_end = k + 1;
      }
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = best_end;
    pos = best_end;  // matches never overlap
    const AddedToken& token = tokens_[m.token_index[best]];
    if (token.single_word) {
      size_t len = 0;
      const bool start_ok =
          start == 0 || !IsWordChar(Utf8Decode(text, Utf8PrevCharStart(text, start), &len));
      const bool stop_ok = stop == text.size() || !IsWordChar(Utf8Decode(text, stop, &len));
      if (!start_ok || !stop_ok) continue;
    }
    if (token.lstrip)
      start = std::max(TrailingWhitespaceStart(text.substr(0, start)), start_offset);
    if (token.rstrip) stop += LeadingWhitespaceBytes(text.substr(stop));
    if (start < start_offset) continue;  // overlaps what a previous rstrip took
    if (start_offset < start) splits.push_back({start_offset, start, -1});
    splits.push_back({start, stop, token.id});
    start_offset = stop;
    pos = std::max(pos, stop);
  }
  if (start_offset < text.size() || splits.empty()) {
    splits.push_back({start_offset, text.size(), -1});
  }
  return splits;
}

}  // namespace rami::tokenizer
