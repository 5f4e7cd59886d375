// Added tokens of tokenizer.json ("added_tokens"): special and non-special tokens matched in
// the text before any BPE, leftmost-longest, with HF's lstrip / rstrip / single_word rules.
// Tokens with "normalized": false are matched on the raw input, the others on each normalized
// piece (with their own content normalized the same way).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coordinator/tokenizer/normalizer.h"
#include "nlohmann/json_fwd.hpp"

namespace rami::tokenizer {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

// A piece of the input after added-token matching: either an added token (id >= 0) or text.
struct AddedSplit {
  size_t start, end;  // byte range in the string that was searched
  int32_t id;         // -1 for plain text
};

class AddedVocabulary {
 public:
  // `normalizer` may be null; it normalizes the contents of "normalized" tokens.
  static absl::StatusOr<AddedVocabulary> FromJson(const nlohmann::json& added_tokens,
                                                  const Normalizer* normalizer);

  // Splits `text` on raw-matched (normalized == false) or normalized-matched tokens.
  std::vector<AddedSplit> SplitRaw(std::string_view text) const { return Split(text, raw_); }
  std::vector<AddedSplit> SplitNormalized(std::string_view text) const {
    return Split(text, normalized_);
  }
  bool has_normalized_tokens() const { return !normalized_.patterns.empty(); }

  const AddedToken* FindById(int32_t id) const;
  const AddedToken* FindByContent(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // A byte trie over token contents, searched leftmost-longest.
  struct Matcher {
    std::vector<std::string> patterns;  // as matched (normalized if the token is)
    std::vector<int32_t> token_index;   // index into tokens_
    struct Node {
      absl::flat_hash_map<unsigned char, int32_t> next;
      int32_t pattern = -1;
    };
    std::vector<Node> nodes;
    bool first_byte[256] = {};
    void Build();
  };
  std::vector<AddedSplit> Split(std::string_view text, const Matcher& matcher) const;

  std::vector<AddedToken> tokens_;
  absl::flat_hash_map<int32_t, size_t> by_id_;
  absl::flat_hash_map<std::string, size_t> by_content_;
  Matcher raw_, normalized_;
};

}  // namespace rami::tokenizer
