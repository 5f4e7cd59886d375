// KvCache: one rank's KV-cache shard — a page pool and, per sequence, one KvStream per
// (layer, local KV head) under one CachePolicy (dense, dms or window). It reserves pages
// before a step (all or nothing), describes the step's streams to the kernels, commits the
// step (promotions, evictions, releases), forks sequences, and reports the accounting the
// scheduler plans with (dms.md §4).
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/paged_attention.h"
#include "worker/kv/cache_policy.h"
#include "worker/kv/kv_page_pool.h"
#include "worker/kv/kv_stream.h"

namespace rami::kv {

using SeqId = int64_t;

// The streams of one step's sequences as the kernels read them, built once per step. Stream
// (b, layer, h) of batch entry b is number (b · num_layers + layer) · num_kv_heads + h.
struct StepStreams {
  std::vector<int32_t> page_table;  // every list's page ids, concatenated
  std::vector<int32_t> kept_page_start;
  std::vector<int32_t> kept_count;
  std::vector<int32_t> window_page_start;
  std::vector<int32_t> window_base;
  std::vector<int32_t> window_start;
  // Stream s's flag of window slot i: flag_columns[s][i · flag_stride], into the cache's flag rows
  // (SequenceWindows::flags, a row per window slot); empty if nothing is evicted.
  std::vector<uint8_t*> flag_columns;
  int64_t flag_stride = 1;
  uint8_t& Flag(size_t stream, int64_t slot) const {
    return flag_columns[stream][slot * flag_stride];
  }
};

struct SequenceStats {
  int64_t logical_tokens = 0;  // tokens processed
  int64_t live_min = 0;        // live tokens over the (layer, head) streams: min, max, sum
  int64_t live_max = 0;
  int64_t live_sum = 0;
  double live_fraction = 1.0;  // mean over streams of live / logical
  int64_t decided = 0;         // eviction decisions taken (one per token, layer and head)
  int64_t evicted = 0;
  int64_t page_refs = 0;       // pages its streams reference (shared pages counted here too)
  int64_t unshared_pages = 0;  // pages only it references: what freeing it returns
};

struct CacheStats {
  int num_pages = 0;
  int free_pages = 0;
  int pages_in_use = 0;  // physical: forked sequences share pages
  int num_sequences = 0;
  int64_t logical_tokens = 0;
  int64_t live_tokens = 0;         // summed over sequences and streams
  double compression_ratio = 1.0;  // 1 / mean(live / logical) over streams and sequences
  double eviction_rate = 0.0;      // mean α over all decisions
};

class KvCache {
 public:
  // `store_values` false: a K-only cache (MLA: one latent + rope-key row per token and layer,
  // num_kv_heads 1, head_dim kv_lora_rank + qk_rope_head_dim).
  KvCache(const KvPoolConfig& pool_config, int num_layers, int num_kv_heads, int head_dim,
          const CachePolicy& policy, bool store_values = true);

  const CachePolicy& policy() const { return rules_.policy; }
  int num_layers() const { return num_layers_; }
  int num_kv_heads() const { return num_kv_heads_; }
  KvPagePool& pool() { return pool_; }
  const KvPagePool& pool() const { return pool_; }

  absl::Status AddSequence(SeqId id);   // AlreadyExists when present
  absl::Status FreeSequence(SeqId id);  // NotFound when absent; releases its references
  bool Contains(SeqId id) const { return seqs_.count(id) != 0; }
  int num_sequences() const { return static_cast<int>(seqs_.size()); }
  int64_t Length(SeqId id) const;  // tokens processed (0 for an unknown id)
  // Page references of `id`'s streams (kept and window lists; 0 for an unknown id), O(1).
  int64_t PageRefs(SeqId id) const;

  // Children share the parent's full pages and copy its partial tail pages; each then
  // evolves on its own (the parent's pending flag stays pending in every child). All or
  // nothing: NotFound / AlreadyExists / ResourceExhausted leave the cache unchanged.
  absl::Status Fork(SeqId parent, absl::Span<const SeqId> children);
  int64_t ForkPageBound(SeqId parent) const;  // pages one child allocates

  // Pages that appending `count` tokens to `id` may allocate (exact for a decode step).
  int64_t PagesToAppend(SeqId id, int64_t count) const;
  // Reserves pages for a step, all or nothing (ResourceExhausted, nothing allocated).
  absl::Status ReserveAppend(absl::Span<const std::pair<SeqId, int64_t>> appends);
  // A step's DMS decisions for the `count` tokens it appended to `id` from position `start`,
  // into the window flags (before CommitAppend, or after it for a decode step under W ≥ 2: the
  // commit reads only older flags): the token at position start + i flags position
  // start + i − 1 (dms.md §3; the decision of the token at position 0 is discarded). Stream
  // (layer, head) reads decisions[layer · layer_stride + i · num_kv_heads + head].
  void SetDecisions(SeqId id, int64_t start, int64_t count, const uint8_t* decisions,
                    size_t layer_stride);
  // After a successful step that appended `count` tokens to `id`.
  // With `decisions` (the layout of SetDecisions, from the committed length), they are written
  // first, in the same pass over the streams.
  void CommitAppend(SeqId id, int64_t count, const uint8_t* decisions = nullptr,
                    size_t layer_stride = 0);
  // After a failed step: returns the unused reservation; the sequence is as before.
  void AbortAppend(SeqId id);
  // Pages each of the next k decode steps of `ids` allocates (one token per sequence per
  // step): exact for k ≤ W under dms, always for dense and window.
  std::vector<int64_t> DecodePageNeeds(absl::Span<const SeqId> ids, int k) const;

  StepStreams BuildStepStreams(absl::Span<const SeqId> batch);
  // The kernels' view of a step's streams (valid while `streams` and the cache live).
  kernels::KvStreamsView View(const StepStreams& streams);

  // The kept lists of `id`'s [num_layers · num_kv_heads] streams (index layer · H + head) and
  // their windows (column: the same index), or null when absent: read by the device page-table
  // mirror (worker/kv/device_kv_tables.h).
  const std::vector<KvStream>* StreamsOf(SeqId id) const {
    auto it = seqs_.find(id);
    return it == seqs_.end() ? nullptr : &it->second.streams;
  }
  const SequenceWindows* WindowsOf(SeqId id) const {
    auto it = seqs_.find(id);
    return it == seqs_.end() ? nullptr : &it->second.windows;
  }
  // The window flags of stream `stream` of `id` (slot 0 at its window_base), null when absent or
  // nothing is evicted; valid until the sequence's next reservation, commit or abort.
  ConstWindowFlags FlagsOf(SeqId id, int stream) const;
  // The most kept tokens over `id`'s streams (0 for an unknown id), O(1).
  int32_t MaxKept(SeqId id) const;

  // The streams of `id` changed since the last ClearChanges (reservations, commits, aborts;
  // `all` for a new sequence):
  // read by DeviceKvTables::Sync, which then visits only those. `streams`: changed in their
  // pages or window base; `kept_only`: only their kept count changed (a commit's promotions into
  // pages already reserved — most of a decode step's changes), so only that count is uploaded.
  // A stream may be in both; neither list is in any order.
  struct StreamChanges {
    bool all = true;
    absl::Span<const int32_t> streams;
    absl::Span<const int32_t> kept_only;
  };
  StreamChanges ChangesOf(SeqId id) const;
  void ClearChanges(SeqId id);

  // Live tokens of one (layer, head) stream.
  int64_t StreamLive(SeqId id, int layer, int head) const;
  SequenceStats SequenceStatsOf(SeqId id) const;
  CacheStats Stats() const;

 private:
  struct Sequence {
    int64_t length = 0;
    std::vector<KvStream> streams;  // [num_layers · num_kv_heads], index layer · H + head
    SequenceWindows windows;        // their windows: column i is stream i's
    int64_t decided = 0;
    int64_t evicted = 0;
    // Over the streams, kept up to date by every operation that changes them, so that the
    // per-step report costs O(1) per sequence: kept tokens (sum, min, max) and page references.
    int64_t kept_sum = 0;
    int32_t kept_min = 0, kept_max = 0;
    int64_t page_refs = 0;
    int32_t owner = -1;  // its id as the pool's page owner (shared pages: KvPagePool::shared_pages)
    // Pages of its next two decode steps, computed by CommitAppend while the streams are at
    // hand (DecodePageNeeds, PagesToAppend of one token); valid until the streams change.
    int64_t decode_needs[2] = {0, 0};
    std::vector<uint8_t> stream_needs;  // [streams] whether its next decode step adds a kept page
    bool needs_valid = false;
    // Streams changed since ClearChanges: their indices, a mark per stream, or all of them.
    bool all_changed = true;
    std::vector<int32_t> changed;
    std::vector<int32_t> kept_changed;
    std::vector<uint8_t> changed_mark;  // per stream: kChanged | kKeptChanged
  };

  static constexpr uint8_t kChanged = 1, kKeptChanged = 2;
  // Records stream `stream` in seq.changed (kChanged) or seq.kept_changed (kKeptChanged).
  static void MarkChanged(Sequence& seq, size_t stream, uint8_t how = kChanged);
  // The decisions of a step (SetDecisions' layout) into `seq`'s flag rows, a row per position.
  void WriteDecisions(Sequence& seq, int64_t start, int64_t count, const uint8_t* decisions,
                      size_t layer_stride);

  // Recomputes kept_sum/min/max and page_refs from the streams: O(streams). The commit keeps
  // them in its own pass (ResetSums, AddToSums per kept list, AddWindowSums).
  static void Summarize(Sequence& seq);
  static void ResetSums(Sequence& seq);
  static void AddToSums(Sequence& seq, const KvStream& s);
  static void AddWindowSums(Sequence& seq);
  // unshared pages of `seq`: what freeing it returns to the pool.
  int64_t UnsharedPages(const Sequence& seq) const {
    return seq.page_refs - pool_.shared_pages(seq.owner);
  }
  // `seq`'s hand on the pool.
  OwnedPages PagesOf(const Sequence& seq) { return {pool_, seq.owner}; }
  // A new sequence: an owner id (a freed one if any, else the next) and its streams.
  Sequence& NewSequence(SeqId id);

  int num_layers_;
  int num_kv_heads_;
  StreamRules rules_;
  KvPagePool pool_;
  std::map<SeqId, Sequence> seqs_;
  std::vector<int32_t> free_owners_;  // owner ids of freed sequences, reused first
  int32_t next_owner_ = 0;
};

}  // namespace rami::kv
