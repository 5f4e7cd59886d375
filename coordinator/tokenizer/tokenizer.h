// A Hugging Face tokenizer loaded from a model directory (tokenizer.json, plus
// tokenizer_config.json and generation_config.json when present): text -> ids -> text,
// exactly as the `tokenizers` library does for byte-level BPE (Llama 3, Qwen2/2.5/3,
// DeepSeek-V3) and SentencePiece-style byte-fallback BPE (Llama 2).
//
// Encode pipeline (HF's): added tokens matched on the raw text -> each remaining piece
// normalized -> normalized added tokens matched -> pre-tokenizer -> BPE -> post-processor
// (BOS/EOS) when add_special_tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer/added_vocabulary.h"
#include "coordinator/tokenizer/bpe_model.h"
#include "coordinator/tokenizer/decoder.h"
#include "coordinator/tokenizer/normalizer.h"
#include "coordinator/tokenizer/pre_tokenizer.h"

namespace rami::tokenizer {

// Special tokens and defaults from tokenizer_config.json / generation_config.json.
struct SpecialTokens {
  std::optional<std::string> bos_token, eos_token, pad_token, unk_token;
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1;
  // Stop tokens: generation_config.json's eos_token_id (int or list), else eos_id.
  std::vector<int32_t> stop_ids;
};

class Tokenizer {
 public:
  // Loads `dir`/tokenizer.json (required) and the two optional config files.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromDirectory(const std::string& dir);
  // Same from file contents; empty strings stand for absent optional files.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json,
                                                             std::string_view config_json = "",
                                                             std::string_view generation_json = "");

  // Text (valid UTF-8) -> ids. add_special_tokens applies the post-processor (BOS/EOS).
  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text,
                                              bool add_special_tokens = false) const;

  // Ids -> text, as HF's Tokenizer.decode. Unknown ids are skipped, as in HF.
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // Ids -> raw bytes before the final UTF-8 repair; a trailing incomplete character is left
  // as raw bytes (for IncrementalDecoder).
  std::string DecodeBytes(const int32_t* ids, size_t n, bool skip_special_tokens) const;

  // Token string of an id (added tokens first, then the model), or nullptr.
  const std::string* IdToToken(int32_t id) const;
  int32_t TokenToId(std::string_view token) const;  // -1 when absent
  bool IsSpecial(int32_t id) const;
  // True for byte-fallback tokens (<0xXX>): their text depends on the tokens that follow.
  bool IsByteFallbackToken(int32_t id) const { return model_->IsByteFallbackToken(id); }
  int32_t vocab_size() const;  // one past the largest id

  const SpecialTokens& special_tokens() const { return special_; }
  const AddedVocabulary& added_vocabulary() const { return added_; }

 private:
  Tokenizer() = default;
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(std::string_view tokenizer_json,
                                                         std::string_view config_json,
                                                         std::string_view generation_json);
  absl::Status LoadConfig(std::string_view config_json, std::string_view generation_json,
                          bool* override_post_processor);
  void EncodePiece(std::string text, bool at_origin, std::vector<int32_t>* ids) const;
  std::string DecodeImpl(const int32_t* ids, size_t n, bool skip_special_tokens,
                         bool keep_partial_tail) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  // Post-processor for one sequence: ids put before and after it.
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  SpecialTokens special_;
};

}  // namespace rami::tokenizer
