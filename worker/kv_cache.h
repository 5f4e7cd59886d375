// KvCache: one rank's KV-cache shard under the dense policy — for every (sequence, layer,
// local KV head) a stream of token slots stored in pages of the KvPagePool. Slot j of a
// stream holds the token at position j. (The DMS policy keeps per-head streams of different
// lengths over the same pool; see shared/docs/dms.md §4.)
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/kv_page_pool.h"

namespace rami {

using SeqId = int64_t;

// The flattened page tables of one step's sequences, built once per step and read by every
// layer. Stream (b, layer, h) of batch entry b is number (b · num_layers + layer) ·
// num_kv_heads + h.
struct StepPageTable {
  std::vector<int32_t> page_table;         // all streams' page ids, concatenated
  std::vector<int32_t> stream_page_start;  // [num_streams] offset into page_table
};

class KvCache {
 public:
  KvCache(const KvPoolConfig& pool_config, int num_layers, int num_kv_heads, int head_dim);

  int num_layers() const { return num_layers_; }
  int num_kv_heads() const { return num_kv_heads_; }
  KvPagePool& pool() { return pool_; }
  const KvPagePool& pool() const { return pool_; }

  absl::Status AddSequence(SeqId id);   // AlreadyExists when present
  absl::Status FreeSequence(SeqId id);  // NotFound when absent; returns all its pages
  bool Contains(SeqId id) const { return seqs_.count(id) != 0; }
  int num_sequences() const { return static_cast<int>(seqs_.size()); }
  // Tokens cached for `id` (0 for an unknown id).
  int64_t Length(SeqId id) const;

  // Pages that appending `num_tokens` to `id` would allocate (all layers and heads).
  int64_t PagesToAppend(SeqId id, int64_t num_tokens) const;
  // Makes room for appending tokens to several sequences, all or nothing: ResourceExhausted
  // (and nothing allocated) when the pool cannot hold them all. Lengths do not change until
  // CommitAppend.
  absl::Status ReserveAppend(absl::Span<const std::pair<SeqId, int64_t>> appends);
  // Records that `num_tokens` reserved slots of `id` now hold tokens.
  void CommitAppend(SeqId id, int64_t num_tokens);

  StepPageTable BuildPageTable(absl::Span<const SeqId> batch) const;

 private:
  struct Sequence {
    int64_t length = 0;
    // [num_layers · num_kv_heads] page lists; under the dense policy they all hold
    // ceil(reserved / page_size) pages.
    std::vector<std::vector<int32_t>> streams;
  };
  int64_t PagesPerStream(int64_t tokens) const;

  int num_layers_;
  int num_kv_heads_;
  KvPagePool pool_;
  std::map<SeqId, Sequence> seqs_;
};

}  // namespace rami
