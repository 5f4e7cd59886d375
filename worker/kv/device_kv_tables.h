// DeviceKvTables: the host side of the device page tables that the CUDA kernels read
// (kernels/cuda/kv_cache_view.h) — a host mirror of the flat tables, laid out as on the device,
// and the per-step *delta* that brings the device copy in line with the CPU KvCache.
//
// Ownership: the CPU KvCache stays the source of truth for page allocation, eviction and
// promotion. After a step's reservation (and the previous step's commit, forks and frees),
// Sync reads the touched sequences' streams and emits only the entries that changed: at batch
// 256 on Qwen3-8B the tables hold millions of entries, never re-uploaded whole.
//
// Layout: every synced sequence owns a *slot*; stream (slot, layer, head) is number
// (slot · num_layers + layer) · num_kv_heads + head, stable for the sequence's life, so
// token_stream[t] = StreamBase(seq) + layer · num_kv_heads (the kernels add the head). Each
// stream owns two regions of the flat page_table: its kept list (append-only; moved to a region
// twice as large when full) and its window list (pages leave at the front, arrive at the back:
// window_page_start slides forward inside the region and the list moves back to the region's
// start, or to a larger region, when it reaches the end). Every move writes the whole list, at
// most once per list length of appended pages: O(1) writes per page, amortized. Flags (evicting
// policies) live in a flags table of their own, per slot and row-major as in the host cache
// (SequenceWindows): a slot owns a flags region of rows of streams_per_sequence bytes, row i
// holding window slot i of every stream, so window slot i of stream s is
// flags[flag_start[s] + i · flag_stride] with flag_stride = streams_per_sequence. A step's
// decisions are then a row per sequence (RecordDeviceFlags), not a byte in each stream's region.
// The rows slide forward inside the region as the windows do and move back to its start (or to
// a larger region) at its end, like a window list; the flags table holds windows only, not the
// kept lists, so the page table's size is not bounded by int32 flag offsets.
//
// Limits: page-table offsets (kept_page_start, window_page_start) and flag offsets are int32
// fields the kernels read, so each table holds < 2^31 entries (`max_entries`); a Sync that
// would grow past it returns ResourceExhausted and changes nothing.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "worker/kv/cache_policy.h"
#include "worker/kv/kv_cache.h"

namespace rami::kv {

// (index, value) writes into one flat table.
template <typename T>
struct TableWrites {
  std::vector<int32_t> index;
  std::vector<T> value;
  void Add(int64_t i, T v) {
    index.push_back(static_cast<int32_t>(i));
    value.push_back(v);
  }
  size_t size() const { return index.size(); }
  void clear() {
    index.clear();
    value.clear();
  }
};

// What one Sync changed. The device applies it in this order: grow each buffer to its new size
// (keeping the old content, zeroing the new entries), then scatter the writes.
struct KvTablesDelta {
  int64_t page_table_size = 0;  // int32 entries after the delta
  int64_t num_streams = 0;      // entries of each per-stream array after the delta
  int64_t flags_size = 0;       // bytes after the delta (0: no flags)
  int64_t flag_stride = 1;      // bytes between a stream's consecutive window slots (layout above)
  TableWrites<int32_t> page_table;
  TableWrites<int32_t> kept_page_start;    // [num_streams]
  TableWrites<int32_t> kept_count;         // [num_streams]
  TableWrites<int32_t> window_page_start;  // [num_streams]
  // The window geometry is a sequence's (SequenceWindows: the same in all its streams), so these
  // two are written per slot: write (i, v) sets streams [i · slot_streams, (i + 1) · slot_streams).
  TableWrites<int32_t> window_base;   // [num_streams / slot_streams]
  TableWrites<int32_t> window_start;  // [num_streams / slot_streams]
  int64_t slot_streams = 1;
  TableWrites<int32_t> flag_start;  // [num_streams]
  TableWrites<uint8_t> flags;       // [flags_size]
  int64_t moved = 0;  // writes (page entries + flags) that moved a list to another place

  int64_t writes() const;  // all (index, value) pairs
  void Clear();            // keeps the sizes
};

// The flat tables on the host, laid out as on the device (KvCacheCudaView's arrays).
struct KvTablesHost {
  std::vector<int32_t> page_table;
  std::vector<int32_t> kept_page_start, kept_count, window_page_start, window_base, window_start,
      flag_start;  // [num_streams] each
  std::vector<uint8_t> flags;
  int64_t flag_stride = 1;  // stream s's window slot i: flags[flag_start[s] + i · flag_stride]
  // Grows to the delta's sizes (new entries zero) and scatters its writes: the CPU twin of the
  // device update.
  void Apply(const KvTablesDelta& delta);
};

class DeviceKvTables {
 public:
  static constexpr int64_t kMaxEntries = (int64_t{1} << 31) - 1;

  // `max_entries` bounds each table (page entries; flag bytes): the int32 limit by default.
  DeviceKvTables(int num_layers, int num_kv_heads, int page_size, const CachePolicy& policy,
                 int64_t max_entries = kMaxEntries);

  // Brings the mirror in line with `cache` for `ids` — the sequences reserved for this step,
  // committed by the previous one, forked or freed since the last Sync (an id the cache no
  // longer holds releases its slot; an untouched sequence's entries stay valid) — and writes
  // what changed to *delta (cleared first). ResourceExhausted when the tables would outgrow
  // max_entries: then nothing changes (the mirror, *delta empty) but the release of freed
  // sequences' slots.
  //
  // Only the streams the cache marks changed (KvCache::ChangesOf) are read, plus the slot's
  // window_base and window_start (one write for all its streams); the marks are cleared once the
  // Sync succeeded. So a sequence's streams are in line after its Sync provided nothing but the
  // cache's own operations changed them — and the device's decisions, which the caller records
  // (RecordDeviceFlags) or declares unknown (ExpectDeviceFlags: its next Sync reads every
  // stream).
  absl::Status Sync(KvCache& cache, absl::Span<const SeqId> ids, KvTablesDelta* delta);

  // Frees the slot of `id` now (Sync also does it for a touched id the cache no longer holds):
  // an engine that reuses a SeqId after FreeSequence must call it before the next Sync.
  void Release(SeqId id);

  // A mirror flag the device may have changed without the host knowing (never 0 or 1).
  static constexpr uint8_t kUnknownFlag = 0xff;

  // After Sync, for each sequence whose step appends `count` tokens under dms: the step's
  // KvWrite sets the flags of positions [length − 1, length + count − 1) on the device (the
  // one-token shift). They read kUnknownFlag in the mirror until a later Sync rewrites them from
  // the host's values — the decisions copied back after a commit, or the reset pending flag
  // after a failed step — so mirror and device never disagree silently.
  void ExpectDeviceFlags(SeqId id, int64_t count) {
    ExpectDeviceFlags(id, SyncedLength(id), count);
  }
  // The same for a step that appended from position `start` (a later Sync may have run).
  void ExpectDeviceFlags(SeqId id, int64_t start, int64_t count);
  // A step appending `count` tokens from `start` is launched: until its decisions are recorded
  // (or declared unknown), the flags it writes are in flight. A Sync meanwhile that moves one of
  // the sequence's window lists copies the host's stale values there; those flags then read
  // kUnknownFlag in the mirror and the Sync after the decisions rewrites them (W ≥ 2: the step
  // between never masks by them).
  void LaunchFlags(SeqId id, int64_t start, int64_t count);
  // After a step that ran: the flags its KvWrite set on the device from its decisions (the
  // layout of KvCache::SetDecisions), so that the next Sync finds the mirror in line with the
  // host flags the same decisions become, and uploads none of them again.
  void RecordDeviceFlags(SeqId id, int64_t start, int64_t count, const uint8_t* decisions,
                         size_t layer_stride);
  // Tokens of `id` at its last Sync (0 when not synced).
  int64_t SyncedLength(SeqId id) const;

  // First stream of a synced sequence (its slot · layers · heads), or -1.
  int32_t StreamBase(SeqId id) const;
  const KvTablesHost& mirror() const { return mirror_; }
  int num_slots() const { return static_cast<int>(slots_.size()); }
  int page_size() const { return page_size_; }
  int streams_per_sequence() const { return streams_per_seq_; }

 private:
  struct Region {
    int64_t begin = 0;
    int64_t capacity = 0;  // a power of two; 0: none
  };
  // Free regions of one table, by capacity, and its bump pointer.
  struct Arena {
    std::map<int64_t, std::vector<int64_t>> free;  // capacity → region begins
    int64_t end = 0;
  };
  struct StreamState {
    Region kept, window;
    int64_t window_first_page = 0;  // absolute page index (window_base / P) at window_page_start
    int32_t kept_synced = 0;        // kept tokens at the last Sync
  };
  struct Slot {
    SeqId id = -1;
    bool used = false;
    int64_t synced_length = 0;  // tokens committed at the last Sync
    bool full = true;           // the next Sync reads every stream (new; flags unknown)
    int64_t flight_from = 0, flight_to = 0;  // flag positions a launched step is writing
    std::vector<StreamState> streams;
    // The windows' flags (evicting policies): a region of the flags table in flag pages (P rows
    // of streams_per_seq_ bytes), window page 0 at flag page `flag_offset` of it, which was
    // absolute window page `flag_first_page` at the last Sync; position p's row starts at byte
    // flag_zero + p · streams_per_seq_.
    Region flags;
    int64_t flag_offset = 0, flag_first_page = 0, flag_zero = 0;
  };

  int AcquireSlot(SeqId id, KvTablesDelta* delta);
  void ReleaseSlot(int slot);
  // Stream `index` of the slot: its kept list and column `index` of its sequence's windows.
  void SyncStream(int slot, int index, const KvStream& stream, const SequenceWindows& windows,
                  bool fresh, KvTablesDelta* delta);
  // The slot's window flags, all streams' rows at once (evicting policies).
  void SyncFlags(int slot, const SequenceWindows& windows, bool fresh, KvTablesDelta* delta);
  // A page-table region of ≥ `entries`.
  Region AllocateRegion(int64_t entries, KvTablesDelta* delta);
  // A flags region of ≥ `pages` flag pages.
  Region AllocateFlagRegion(int64_t pages, KvTablesDelta* delta);
  static void FreeRegion(Region& region, Arena& arena);
  // One row of the slot's flags (a window slot of every stream) from the host's row.
  void SetFlagRow(int64_t at, const uint8_t* row, KvTablesDelta* delta);
  // Page entries (and flag pages) Sync may bump its arenas by for `ids`: an upper bound, so
  // that a Sync over the limit is refused before it changes anything.
  void GrowthBound(const KvCache& cache, absl::Span<const SeqId> ids, int64_t* pages,
                   int64_t* flag_pages) const;
  void SetStreamField(std::vector<int32_t>& table, TableWrites<int32_t>& writes, int64_t stream,
                      int32_t value);
  // The same value in every stream of the slot: one write.
  void SetSlotField(std::vector<int32_t>& table, TableWrites<int32_t>& writes, int slot,
                    int32_t value);
  void SetPage(int64_t at, int32_t page, KvTablesDelta* delta);
  void SetFlag(int64_t at, uint8_t flag, KvTablesDelta* delta);

  const int num_layers_;
  const int num_kv_heads_;
  const int streams_per_seq_;
  const int page_size_;
  const StreamRules rules_;
  const int64_t min_window_capacity_;
  const int64_t max_entries_;
  std::map<SeqId, int> slot_of_;
  std::vector<Slot> slots_;
  std::vector<int> free_slots_;
  // Flag rows of positions [from, to) that moved while in flight, or that the device may have
  // written unknown to the host: rewritten by the next Sync.
  struct Refresh {
    int slot;
    int64_t from, to;
  };
  std::vector<Refresh> refresh_;
  Arena pages_;  // page_table regions (kept and window lists)
  Arena flags_;  // flags regions (a slot's windows, evicting policies), in flag pages
  KvTablesHost mirror_;
};

}  // namespace rami::kv
