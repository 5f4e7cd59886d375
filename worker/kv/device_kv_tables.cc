// The host mirror of the device page tables and its per-step deltas; see device_kv_tables.h.
#include "worker/kv/device_kv_tables.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace rami::kv {
namespace {

constexpr int64_t kMinRegion = 4;        // page entries
constexpr int64_t kMinTableSize = 1024;  // page entries of the first page_table allocation

int64_t RoundUpPow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

// Write (i, v) sets entries [i · run, (i + 1) · run) to v.
template <typename T>
void Scatter(const TableWrites<T>& writes, std::vector<T>& table, int64_t run = 1) {
  for (size_t i = 0; i < writes.size(); ++i) {
    const int64_t at = int64_t{writes.index[i]} * run;
    RAMI_CHECK(at >= 0 && static_cast<size_t>(at + run) <= table.size(),
               "delta write %d outside a table of %zu", writes.index[i], table.size());
    std::fill_n(table.begin() + at, run, writes.value[i]);
  }
}

}  // namespace

int64_t KvTablesDelta::writes() const {
  return static_cast<int64_t>(page_table.size() + kept_page_start.size() + kept_count.size() +
                              window_page_start.size() + window_base.size() + window_start.size() +
                              flag_start.size() + flags.size());
}

void KvTablesDelta::Clear() {
  for (auto* w : {&page_table, &kept_page_start, &kept_count, &window_page_start, &window_base,
                  &window_start, &flag_start}) {
    w->clear();
  }
  flags.clear();
  moved = 0;
}

void KvTablesHost::Apply(const KvTablesDelta& d) {
  RAMI_CHECK(static_cast<size_t>(d.page_table_size) >= page_table.size() &&
                 static_cast<size_t>(d.num_streams) >= kept_count.size() &&
                 static_cast<size_t>(d.flags_size) >= flags.size(),
             "device tables never shrink");
  page_table.resize(d.page_table_size, 0);
  for (auto* v : {&kept_page_start, &kept_count, &window_page_start, &window_base, &window_start,
                  &flag_start}) {
    v->resize(d.num_streams, 0);
  }
  flags.resize(d.flags_size, 0);
  flag_stride = d.flag_stride;
  Scatter(d.page_table, page_table);
  Scatter(d.kept_page_start, kept_page_start);
  Scatter(d.kept_count, kept_count);
  Scatter(d.window_page_start, window_page_start);
  Scatter(d.window_base, window_base, d.slot_streams);
  Scatter(d.window_start, window_start, d.slot_streams);
  Scatter(d.flag_start, flag_start);
  Scatter(d.flags, flags);
}

DeviceKvTables::DeviceKvTables(int num_layers, int num_kv_heads, int page_size,
                               const CachePolicy& policy, int64_t max_entries)
    : num_layers_(num_layers),
      num_kv_heads_(num_kv_heads),
      streams_per_seq_(num_layers * num_kv_heads),
      page_size_(page_size),
      rules_{policy, page_size},
      // An evicting window spans ≤ W + 1 positions plus a decode step's token: room for twice
      // that many pages lets it slide a full region length between moves. Dense windows only
      // grow: they start small and double.
      min_window_capacity_(
          policy.evicts() ? RoundUpPow2(std::max<int64_t>(
                                kMinRegion, 2 * (rules_.PagesFor(int64_t{policy.window} + 2) + 1)))
                          : kMinRegion),
      max_entries_(std::min(max_entries, kMaxEntries)) {
  mirror_.flag_stride = streams_per_seq_;
}

int32_t DeviceKvTables::StreamBase(SeqId id) const {
  auto it = slot_of_.find(id);
  return it == slot_of_.end() ? -1 : it->second * streams_per_seq_;
}

absl::Status DeviceKvTables::Sync(KvCache& cache, absl::Span<const SeqId> ids,
                                  KvTablesDelta* delta) {
  RAMI_CHECK(cache.num_layers() == num_layers_ && cache.num_kv_heads() == num_kv_heads_ &&
                 cache.pool().page_size() == page_size_,
             "device tables built for another cache geometry");
  delta->Clear();
  delta->page_table_size = static_cast<int64_t>(mirror_.page_table.size());
  delta->num_streams = static_cast<int64_t>(mirror_.kept_count.size());
  delta->flags_size = static_cast<int64_t>(mirror_.flags.size());
  delta->flag_stride = streams_per_seq_;
  delta->slot_streams = streams_per_seq_;
  // Releases first, so that their regions and slots serve this step's new sequences.
  for (SeqId id : ids) {
    auto it = slot_of_.find(id);
    if (it != slot_of_.end() && !cache.Contains(id)) ReleaseSlot(it->second);
  }
  // A coarse bound first, O(1) per sequence: a stream allocates at most one kept region of
  // < 4 · max(m, 2) entries and one window region of < max(4 n, 2 · min_window_capacity_, 8).
  // Only when that could cross the limit is the exact bound (a pass over the streams) taken.
  int64_t pages = 0, flag_pages = 0;
  for (SeqId id : ids) {
    pages += 4 * cache.PageRefs(id) + int64_t{streams_per_seq_} * (2 * min_window_capacity_ + 16);
    const SequenceWindows* windows = cache.WindowsOf(id);
    if (windows != nullptr) flag_pages += 4 * windows->num_pages() + 2 * min_window_capacity_ + 16;
  }
  const int64_t flag_page_bytes = int64_t{page_size_} * streams_per_seq_;
  auto over = [&] {
    return pages_.end + pages > max_entries_ ||
           (flags_.end + flag_pages) * flag_page_bytes > max_entries_;
  };
  if (over()) GrowthBound(cache, ids, &pages, &flag_pages);
  if (over()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "device KV tables: this step's sequences need up to ", pages_.end + pages,
        " page-table entries and ", (flags_.end + flag_pages) * flag_page_bytes,
        " flags; the kernels index at most ", max_entries_, " of each (int32 offsets)"));
  }
  // Taken before the streams' syncs, which may add entries for the steps in flight now.
  const std::vector<Refresh> pending = std::exchange(refresh_, {});
  for (SeqId id : ids) {
    const std::vector<KvStream>* streams = cache.StreamsOf(id);
    if (streams == nullptr) continue;
    const SequenceWindows& windows = *cache.WindowsOf(id);
    auto it = slot_of_.find(id);
    const bool fresh = it == slot_of_.end();
    const int slot = fresh ? AcquireSlot(id, delta) : it->second;
    const int64_t length = cache.Length(id);
    Slot& sl = slots_[slot];
    const KvCache::StreamChanges changes = cache.ChangesOf(id);
    SetSlotField(mirror_.window_base, delta->window_base, slot, windows.base);
    SetSlotField(mirror_.window_start, delta->window_start, slot, rules_.WindowStart(length));
    if (fresh || sl.full || changes.all) {
      for (int i = 0; i < streams_per_seq_; ++i) {
        SyncStream(slot, i, (*streams)[i], windows, fresh, delta);
      }
    } else {
      // The unchanged streams' entries hold. Promotions alone: the kept count, nothing else of
      // the stream (its kept_synced stays behind, which only widens the pages the next full
      // SyncStream compares).
      const int64_t first = static_cast<int64_t>(slot) * streams_per_seq_;
      for (int32_t i : changes.kept_only) {
        SetStreamField(mirror_.kept_count, delta->kept_count, first + i, (*streams)[i].kept);
      }
      for (int32_t i : changes.streams) {
        SyncStream(slot, i, (*streams)[i], windows, false, delta);
      }
    }
    if (rules_.policy.evicts()) SyncFlags(slot, windows, fresh, delta);
    sl.synced_length = length;
    sl.full = false;
    cache.ClearChanges(id);
  }
  // Flags whose lists moved while a step wrote them, or that a failed step may have written:
  // rewritten from the host's values, where the lists are now (a slot released and taken again
  // meanwhile holds the host's values already).
  for (const Refresh& r : pending) {
    const Slot& sl = slots_[r.slot];
    const SequenceWindows* windows = sl.used ? cache.WindowsOf(sl.id) : nullptr;
    if (windows == nullptr) continue;
    const int64_t end = windows->base + windows->num_pages() * page_size_;
    for (int64_t p = std::max<int64_t>(r.from, windows->base); p < std::min(r.to, end); ++p) {
      SetFlagRow(sl.flag_zero + p * streams_per_seq_, windows->flags.Row(p - windows->base), delta);
    }
  }
  return absl::OkStatus();
}

void DeviceKvTables::GrowthBound(const KvCache& cache, absl::Span<const SeqId> ids, int64_t* pages,
                                 int64_t* flag_pages) const {
  // What SyncStream may allocate per stream: a kept region of RoundUpPow2(2m) when the list
  // outgrew its region, a window region of RoundUpPow2(max(2n, min)) when the window outgrew
  // its region (or the stream is new), and per slot a flags region of the same size when the
  // windows outgrew it. A free region of that capacity serves one allocation; the rest bump the
  // arena (regions this Sync frees by moving lists are not counted).
  *pages = *flag_pages = 0;
  const bool flags = rules_.policy.evicts();
  std::map<int64_t, int64_t> free_pages, free_flags;  // capacity → free regions left
  for (const auto& [capacity, begins] : pages_.free) free_pages[capacity] = begins.size();
  for (const auto& [capacity, begins] : flags_.free) free_flags[capacity] = begins.size();
  auto bump = [](std::map<int64_t, int64_t>& free, int64_t capacity) -> int64_t {
    auto it = free.find(capacity);
    if (it != free.end() && it->second > 0) {
      --it->second;
      return 0;
    }
    return capacity;
  };
  for (SeqId id : ids) {
    const std::vector<KvStream>* streams = cache.StreamsOf(id);
    if (streams == nullptr) continue;
    const int64_t n = cache.WindowsOf(id)->num_pages();
    auto it = slot_of_.find(id);
    const Slot* slot = it == slot_of_.end() ? nullptr : &slots_[it->second];
    const int64_t window = RoundUpPow2(std::max({2 * n, min_window_capacity_, kMinRegion}));
    if (flags && (slot == nullptr || slot->flags.capacity == 0 || 2 * n > slot->flags.capacity)) {
      *flag_pages += bump(free_flags, window);
    }
    for (int i = 0; i < streams_per_seq_; ++i) {
      const KvStream& stream = (*streams)[i];
      const StreamState* st = slot == nullptr ? nullptr : &slot->streams[i];
      const int64_t m = static_cast<int64_t>(stream.kept_pages.size());
      if (m > (st == nullptr ? 0 : st->kept.capacity)) {
        *pages += bump(free_pages, RoundUpPow2(std::max(2 * m, kMinRegion)));
      }
      if (st == nullptr || st->window.capacity == 0 || 2 * n > st->window.capacity) {
        *pages += bump(free_pages, window);
      }
    }
  }
}

int DeviceKvTables::AcquireSlot(SeqId id, KvTablesDelta* delta) {
  int slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<int>(slots_.size());
    slots_.emplace_back();
    const size_t streams = slots_.size() * streams_per_seq_;
    for (auto* v : {&mirror_.kept_page_start, &mirror_.kept_count, &mirror_.window_page_start,
                    &mirror_.window_base, &mirror_.window_start, &mirror_.flag_start}) {
      v->resize(streams, 0);
    }
    delta->num_streams = static_cast<int64_t>(streams);
  }
  Slot& s = slots_[slot];
  s.id = id;
  s.used = true;
  s.synced_length = 0;
  s.streams.assign(streams_per_seq_, StreamState());
  slot_of_[id] = slot;
  return slot;
}

void DeviceKvTables::Release(SeqId id) {
  auto it = slot_of_.find(id);
  if (it != slot_of_.end()) ReleaseSlot(it->second);
}

int64_t DeviceKvTables::SyncedLength(SeqId id) const {
  auto it = slot_of_.find(id);
  return it == slot_of_.end() ? 0 : slots_[it->second].synced_length;
}

void DeviceKvTables::ReleaseSlot(int slot) {
  Slot& s = slots_[slot];
  for (StreamState& st : s.streams) {
    FreeRegion(st.kept, pages_);
    FreeRegion(st.window, pages_);
  }
  FreeRegion(s.flags, flags_);
  slot_of_.erase(s.id);
  s = Slot();
  free_slots_.push_back(slot);
}

namespace {

// One region of `capacity` from `arena`: a freed one, or the bump pointer's next.
template <typename Arena>
int64_t Take(Arena& arena, int64_t capacity) {
  auto it = arena.free.find(capacity);
  if (it != arena.free.end() && !it->second.empty()) {
    const int64_t begin = it->second.back();
    it->second.pop_back();
    return begin;
  }
  const int64_t begin = arena.end;
  arena.end += capacity;
  return begin;
}

// A table's new size when its arena's end passed it: geometric growth (the device copies its old
// table once per doubling) within `max_entries` (Sync has checked that the arenas' ends fit).
int64_t Grown(int64_t needed, size_t current, int64_t minimum, int64_t max_entries) {
  return std::min(max_entries, std::max({minimum, needed, 2 * static_cast<int64_t>(current)}));
}

}  // namespace

DeviceKvTables::Region DeviceKvTables::AllocateRegion(int64_t entries, KvTablesDelta* delta) {
  const int64_t capacity = RoundUpPow2(std::max(entries, kMinRegion));
  const Region region{Take(pages_, capacity), capacity};
  if (pages_.end > static_cast<int64_t>(mirror_.page_table.size())) {
    mirror_.page_table.resize(
        Grown(pages_.end, mirror_.page_table.size(), kMinTableSize, max_entries_), 0);
    delta->page_table_size = static_cast<int64_t>(mirror_.page_table.size());
  }
  return region;
}

DeviceKvTables::Region DeviceKvTables::AllocateFlagRegion(int64_t pages, KvTablesDelta* delta) {
  const int64_t capacity = RoundUpPow2(std::max(pages, kMinRegion));
  const Region region{Take(flags_, capacity), capacity};
  const int64_t page_bytes = int64_t{page_size_} * streams_per_seq_;
  const int64_t bytes = flags_.end * page_bytes;
  if (bytes > static_cast<int64_t>(mirror_.flags.size())) {
    mirror_.flags.resize(Grown(bytes, mirror_.flags.size(), kMinRegion * page_bytes, max_entries_),
                         0);
    delta->flags_size = static_cast<int64_t>(mirror_.flags.size());
  }
  return region;
}

void DeviceKvTables::FreeRegion(Region& region, Arena& arena) {
  if (region.capacity > 0) arena.free[region.capacity].push_back(region.begin);
  region = Region();
}

void DeviceKvTables::SetStreamField(std::vector<int32_t>& table, TableWrites<int32_t>& writes,
                                    int64_t stream, int32_t value) {
  if (table[stream] == value) return;
  table[stream] = value;
  writes.Add(stream, value);
}

void DeviceKvTables::SetSlotField(std::vector<int32_t>& table, TableWrites<int32_t>& writes,
                                  int slot, int32_t value) {
  // Every stream of a slot holds the same value (new entries are all zero): the first tells.
  const auto first = table.begin() + int64_t{slot} * streams_per_seq_;
  if (*first == value) return;
  std::fill_n(first, streams_per_seq_, value);
  writes.Add(slot, value);
}

void DeviceKvTables::SetPage(int64_t at, int32_t page, KvTablesDelta* delta) {
  if (mirror_.page_table[at] == page) return;
  mirror_.page_table[at] = page;
  delta->page_table.Add(at, page);
}

void DeviceKvTables::SetFlag(int64_t at, uint8_t flag, KvTablesDelta* delta) {
  if (mirror_.flags[at] == flag) return;
  mirror_.flags[at] = flag;
  delta->flags.Add(at, flag);
}

// Stable entries (never rewritten): kept pages below ceil(kept_synced / P) — the kept list is
// append-only and only reserved pages past it are trimmed; window pages of absolute index below
// ceil(synced_length / P) — the window only drops pages at the front; and flags of positions
// ≤ synced_length − 2 (fixed before the last Sync). Everything after is compared, so a failed
// step's trimmed and re-reserved pages are rewritten when they differ.
void DeviceKvTables::SyncStream(int slot, int index, const KvStream& stream,
                                const SequenceWindows& windows, bool fresh, KvTablesDelta* delta) {
  Slot& sl = slots_[slot];
  StreamState& st = sl.streams[index];
  const int64_t s = static_cast<int64_t>(slot) * streams_per_seq_ + index;
  const int64_t P = page_size_;
  const int64_t synced = fresh ? 0 : sl.synced_length;

  // Kept list: append-only; a full region moves to one twice as large.
  const int64_t m = static_cast<int64_t>(stream.kept_pages.size());
  int64_t kept_from = fresh ? 0 : rules_.PagesFor(st.kept_synced);
  if (m > st.kept.capacity) {
    Region old = st.kept;
    st.kept = AllocateRegion(2 * m, delta);
    FreeRegion(old, pages_);
    kept_from = 0;
    delta->moved += m;
  }
  for (int64_t j = std::min(kept_from, m); j < m; ++j) {
    SetPage(st.kept.begin + j, stream.kept_pages[j], delta);
  }
  st.kept_synced = stream.kept;
  SetStreamField(mirror_.kept_page_start, delta->kept_page_start, s,
                 static_cast<int32_t>(st.kept.begin));
  SetStreamField(mirror_.kept_count, delta->kept_count, s, stream.kept);

  // Window list: slides forward inside its region; moves when it reaches the region's end.
  RAMI_CHECK(windows.base % P == 0, "window base %d not page aligned", windows.base);
  const int64_t n = windows.num_pages();
  const int64_t first_page = windows.base / P;
  int64_t start = fresh ? 0 : mirror_.window_page_start[s] + (first_page - st.window_first_page);
  bool moved = fresh || st.window.capacity == 0;
  if (moved || start + n > st.window.begin + st.window.capacity) {
    moved = true;
    if (st.window.capacity == 0 || 2 * n > st.window.capacity) {
      Region old = st.window;
      st.window = AllocateRegion(std::max(2 * n, min_window_capacity_), delta);
      FreeRegion(old, pages_);
    }
    start = st.window.begin;
  }
  st.window_first_page = first_page;
  // Unstable window pages: all after a move, else those from absolute page ceil(synced / P).
  const int64_t window_from =
      moved ? 0 : std::clamp<int64_t>(rules_.PagesFor(synced) - first_page, 0, n);
  if (moved) delta->moved += n;
  const ConstPageColumn pages = windows.pages.Column(index);
  for (int64_t j = window_from; j < n; ++j) SetPage(start + j, pages[j], delta);
  SetStreamField(mirror_.window_page_start, delta->window_page_start, s,
                 static_cast<int32_t>(start));
}

}  // namespace rami::kv
