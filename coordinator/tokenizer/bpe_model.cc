// BPE model (see bpe_model.h). The merge loop follows HF tokenizers' Word::merge_all: a
// min-heap of (rank, position) candidate merges, stale entries skipped when popped.
#include "coordinator/tokenizer/bpe_model.h"

#include <queue>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "coordinator/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace rami::tokenizer {
namespace {

using nlohmann::json;

constexpr size_t kCacheCapacity = 1 << 16;
constexpr size_t kMaxCachedWordBytes = 256;

struct Symbol {
  int32_t id;
  int32_t prev, next;  // neighbours in the linked list, -1 at the ends
  uint32_t len;        // bytes covered; 0 once merged into the left neighbour
};

struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

// model.vocab: token -> id, and the reverse table.
absl::Status BpeModel::ReadVocab(const json& model) {
  if (!model.contains("vocab") || !model["vocab"].is_object()) {
    return absl::InvalidArgumentError("model.vocab: expected an object of token -> id");
  }
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 24)) {
      return absl::InvalidArgumentError(absl::StrCat("model.vocab[\"", token, "\"]: bad id"));
    }
    const auto i = id.get<int32_t>();
    vocab_[token] = i;
    if (static_cast<size_t>(i) >= id_to_token_.size()) id_to_token_.resize(i + 1);
    id_to_token_[i] = token;
  }
  return absl::OkStatus();
}

// model.merges: "a b" strings (older files) or [a, b] pairs, in rank order; every token of a
// merge, and its result, must be in the vocabulary.
absl::Status BpeModel::ReadMerges(const json& model) {
  if (!model.contains("merges") || !model["merges"].is_array()) {
    return absl::InvalidArgumentError("model.merges: expected an array");
  }
  const json& merges = model["merges"];
  const size_t prefix_len = continuing_subword_prefix_.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    std::string a, b;
    const json& m = merges[rank];
    if (m.is_string()) {  // "a b" (older files)
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ', 1);
      if (space == std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat("model.merges[", rank, "]: \"", s, "\" is not \"a b\""));
      }
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("model.merges[", rank, "]: expected \"a b\" or [a, b]"));
    }
    const int32_t id_a = TokenToId(a), id_b = TokenToId(b);
    std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : b);
    const int32_t id_new = TokenToId(merged);
    if (id_a < 0 || id_b < 0 || id_new < 0) {
      return absl::InvalidArgumentError(absl::StrCat("model.merges[", rank, "]: \"", a, "\" + \"",
                                                     b,
                                                     "\" uses a token missing from model.vocab"));
    }
    merges_[PairKey(id_a, id_b)] = Merge{static_cast<int32_t>(rank), id_new};
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const json& model) {
  auto bpe = std::unique_ptr<BpeModel>(new BpeModel());
  RAMI_RETURN_IF_ERROR(bpe->ReadVocab(model));
  auto str_or_empty = [&](const char* key) -> std::string {
    return model.contains(key) && model[key].is_string() ? model[key].get<std::string>() : "";
  };
  bpe->continuing_subword_prefix_ = str_or_empty("continuing_subword_prefix");
  bpe->end_of_word_suffix_ = str_or_empty("end_of_word_suffix");
  bpe->fuse_unk_ = model.value("fuse_unk", false);
  bpe->byte_fallback_ = model.value("byte_fallback", false);
  bpe->ignore_merges_ = model.value("ignore_merges", false);
  if (model.contains("dropout") && model["dropout"].is_number() &&
      model["dropout"].get<double>() > 0) {
    return absl::UnimplementedError(
        "model.dropout: BPE dropout is a training feature, not supported");
  }
  const std::string unk = str_or_empty("unk_token");
  if (!unk.empty()) {
    auto it = bpe->vocab_.find(unk);
    if (it == bpe->vocab_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.unk_token \"", unk, "\" is not in model.vocab"));
    }
    bpe->unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) bpe->byte_ids_[b] = bpe->TokenToId(absl::StrFormat("<0x%02X>", b));

  RAMI_RETURN_IF_ERROR(bpe->ReadMerges(model));
  return bpe;
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return nullptr;
  const std::string& t = id_to_token_[id];
  if (t.empty() && vocab_.find(t) == vocab_.end()) return nullptr;
  return &t;
}

bool BpeModel::IsByteFallbackToken(int32_t id) const {
  if (!byte_fallback_ || id < 0) return false;
  for (int32_t b : byte_ids_) {
    if (b == id) return true;
  }
  return false;
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(absl::string_view(token.data(), token.size()));
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const int32_t id = TokenToId(word);
    if (id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(absl::string_view(word.data(), word.size()));
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t mark = ids->size();
  MergeWord(word, ids);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::vector<int32_t>(ids->begin() + mark, ids->end()));
  }
}

// Long on purpose (~90 lines): Hugging Face's BPE merge loop — symbols in a linked list, a
// priority queue of candidate pairs by merge rank, stale candidates skipped — kept whole so it
// reads against tokenizers' word.rs merge_all.
void BpeModel::MergeWord(std::string_view word, std::vector<int32_t>* ids) const {
  // 1. One symbol per character (or per byte through <0xXX>, or <unk>).
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id, uint32_t len) {
    const auto n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, len});
  };
  int32_t pending_unk_len = -1;  // bytes of a pending (possibly fused) <unk>
  std::string scratch;
  size_t i = 0;
  while (i < word.size()) {
    const size_t len = Utf8CharLen(word, i);
    const bool first = i == 0, last = i + len == word.size();
    std::string_view piece = word.substr(i, len);
    if ((!first && !continuing_subword_prefix_.empty()) || (last && !end_of_word_suffix_.empty())) {
      scratch.assign(first ? "" : continuing_subword_prefix_);
      scratch.append(piece);
      if (last) scratch.append(end_of_word_suffix_);
      piece = scratch;
    }
    const int32_t id = TokenToId(piece);
    i += len;
    if (id >= 0) {
      if (pending_unk_len >= 0) add(unk_id_, pending_unk_len);
      pending_unk_len = -1;
      add(id, static_cast<uint32_t>(len));
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : piece) all &= byte_ids_[b] >= 0;
      if (all) {  // HF leaves a pending <unk> pending here; so do we
        for (unsigned char b : piece) add(byte_ids_[b], 1);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk_len >= 0 && fuse_unk_) {
        pending_unk_len += static_cast<int32_t>(len);
      } else {
        if (pending_unk_len >= 0) add(unk_id_, pending_unk_len);
        pending_unk_len = static_cast<int32_t>(len);
      }
    }
  }
  if (pending_unk_len >= 0) add(unk_id_, pending_unk_len);

  // 2. Apply merges lowest rank first (leftmost on ties).
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto find_merge = [this](int32_t a, int32_t b) -> const Merge* {
    auto it = merges_.find(PairKey(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t k = 0; k + 1 < symbols.size(); ++k) {
    if (const Merge* m = find_merge(symbols[k].id, symbols[k + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(k), m->new_id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    const int32_t next_pos = cur.next;
    const Symbol right = symbols[next_pos];
    const Merge* m = find_merge(cur.id, right.id);
    if (m == nullptr || m->new_id != top.new_id) continue;  // stale entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[next_pos].len = 0;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (cur.prev >= 0) {
      if (const Merge* pm = find_merge(symbols[cur.prev].id, cur.id)) {
        queue.push({pm->rank, cur.prev, pm->new_id});
      }
    }
    if (cur.next >= 0) {
      if (const Merge* nm = find_merge(cur.id, symbols[cur.next].id)) {
        queue.push({nm->rank, top.pos, nm->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.len != 0) ids->push_back(s.id);
  }
}

}  // namespace rami::tokenizer
