// The BPE model of tokenizer.json ("model": {"type": "BPE"}): vocabulary, merges by rank,
// byte fallback (<0xXX> tokens, Llama 2), unknown-token fusing and ignore_merges (Llama 3).
// Turns one pre-tokenized word into token ids, with a cache of recent words.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace rami::tokenizer {

class BpeModel {
 public:
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  // Appends the ids of `word` to `ids`.
  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  // Token string of `id`, or nullptr when the model has no such id.
  const std::string* IdToToken(int32_t id) const;
  // Id of `token`, or -1.
  int32_t TokenToId(std::string_view token) const;
  // True for a <0xXX> token when byte fallback is on.
  bool IsByteFallbackToken(int32_t id) const;
  int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  absl::Status ReadVocab(const nlohmann::json& model);
  absl::Status ReadMerges(const nlohmann::json& model);

  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void MergeWord(std::string_view word, std::vector<int32_t>* ids) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;  // dense by id; empty string for holes
  absl::flat_hash_map<uint64_t, Merge> merges_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  int32_t byte_ids_[256];  // ids of <0x00>..<0xFF>, -1 when absent

  // Word -> ids cache. HF caches words too; a mutex keeps it safe across request threads.
  mutable std::mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace rami::tokenizer
