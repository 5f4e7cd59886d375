// The window flags of the device tables: a slot's rows (SyncFlags), and what the device writes
// into them during a step (ExpectDeviceFlags, LaunchFlags, RecordDeviceFlags); see
// device_kv_tables.h for the layout.
#include "worker/kv/device_kv_tables.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace rami::kv {

void DeviceKvTables::ExpectDeviceFlags(SeqId id, int64_t start, int64_t count) {
  if (rules_.policy.kind != CachePolicyKind::kDms || count <= 0) return;
  auto it = slot_of_.find(id);
  RAMI_CHECK(it != slot_of_.end(), "sequence %lld was not synced", static_cast<long long>(id));
  Slot& sl = slots_[it->second];
  sl.full = true;  // the flags the device may have written are rewritten from the host's
  sl.flight_from = sl.flight_to = 0;
  const int64_t from = std::max<int64_t>(start - 1, 0), to = start + count - 1;
  const int64_t base = mirror_.window_base[static_cast<int64_t>(it->second) * streams_per_seq_];
  for (int64_t p = from; p < to; ++p) {
    RAMI_CHECK(p >= base, "decided position %lld left the window", static_cast<long long>(p));
    std::fill_n(mirror_.flags.begin() + sl.flag_zero + p * streams_per_seq_, streams_per_seq_,
                kUnknownFlag);
  }
  if (from < to) refresh_.push_back({it->second, from, to});
}

void DeviceKvTables::LaunchFlags(SeqId id, int64_t start, int64_t count) {
  if (rules_.policy.kind != CachePolicyKind::kDms || count <= 0) return;
  auto it = slot_of_.find(id);
  RAMI_CHECK(it != slot_of_.end(), "sequence %lld was not synced", static_cast<long long>(id));
  Slot& sl = slots_[it->second];
  sl.flight_from = std::max<int64_t>(start - 1, 0);
  sl.flight_to = start + count - 1;
}

void DeviceKvTables::RecordDeviceFlags(SeqId id, int64_t start, int64_t count,
                                       const uint8_t* decisions, size_t layer_stride) {
  if (rules_.policy.kind != CachePolicyKind::kDms || count <= 0) return;
  auto it = slot_of_.find(id);
  RAMI_CHECK(it != slot_of_.end(), "sequence %lld was not synced", static_cast<long long>(id));
  Slot& sl = slots_[it->second];
  sl.flight_from = sl.flight_to = 0;
  const int64_t first = std::max<int64_t>(start, 1);  // the first token whose decision is kept
  for (int64_t p = first; p < start + count; ++p) {   // token p flags position p − 1
    uint8_t* row = mirror_.flags.data() + sl.flag_zero + (p - 1) * streams_per_seq_;
    for (int layer = 0; layer < num_layers_; ++layer) {
      const uint8_t* d = decisions + layer * layer_stride + (p - start) * num_kv_heads_;
      uint8_t* out = row + layer * num_kv_heads_;
      for (int h = 0; h < num_kv_heads_; ++h) {
        // kUnknownFlag: the rows moved while the step ran; the next Sync rewrites them.
        if (out[h] != kUnknownFlag) out[h] = d[h];
      }
    }
  }
}

void DeviceKvTables::SetFlagRow(int64_t at, const uint8_t* row, KvTablesDelta* delta) {
  uint8_t* mirror = mirror_.flags.data() + at;
  if (std::memcmp(mirror, row, static_cast<size_t>(streams_per_seq_)) == 0) return;
  for (int c = 0; c < streams_per_seq_; ++c) SetFlag(at + c, row[c], delta);
}

// The same stability rules as SyncStream's, for rows: all after a move; else the rows of new
// window pages, and, when the device's writes are not known (a new slot, or ExpectDeviceFlags:
// they read kUnknownFlag here), the rows from position synced − 1 (the pending one) on, so that
// they are rewritten from the host's values. The rows the last step decided were recorded
// (RecordDeviceFlags).
void DeviceKvTables::SyncFlags(int slot, const SequenceWindows& windows, bool fresh,
                               KvTablesDelta* delta) {
  Slot& sl = slots_[slot];
  const int64_t P = page_size_, S = streams_per_seq_;
  const int64_t synced = fresh ? 0 : sl.synced_length;
  const int64_t old_zero = sl.flag_zero;  // where a launched step writes (unless fresh)
  const int64_t n = windows.num_pages();
  const int64_t first_page = windows.base / P;
  int64_t offset = fresh ? 0 : sl.flag_offset + (first_page - sl.flag_first_page);
  const bool moved = fresh || sl.flags.capacity == 0 || offset + n > sl.flags.capacity;
  if (moved) {
    if (sl.flags.capacity == 0 || 2 * n > sl.flags.capacity) {
      Region old = sl.flags;
      sl.flags = AllocateFlagRegion(std::max(2 * n, min_window_capacity_), delta);
      FreeRegion(old, flags_);
    }
    offset = 0;
  }
  sl.flag_offset = offset;
  sl.flag_first_page = first_page;
  const int64_t row0 = (sl.flags.begin + offset) * P;  // the table row of window slot 0
  sl.flag_zero = (row0 - windows.base) * S;
  // The streams' flag_start: row0 · S + column, written as a set, so column 0 tells whether the
  // rows moved or slid since the last Sync (a fresh slot's entries are another owner's or zero).
  const int64_t first = static_cast<int64_t>(slot) * S;
  if (fresh || mirror_.flag_start[first] != row0 * S) {
    for (int64_t c = 0; c < S; ++c) {
      SetStreamField(mirror_.flag_start, delta->flag_start, first + c,
                     static_cast<int32_t>(row0 * S + c));
    }
  }
  const int64_t window_from =
      moved ? 0 : std::clamp<int64_t>(rules_.PagesFor(synced) - first_page, 0, n);
  const int64_t from = moved     ? 0
                       : sl.full ? std::clamp<int64_t>(synced - 1 - windows.base, 0, n * P)
                                 : window_from * P;
  if (moved) delta->moved += n * P * S;
  for (int64_t i = from; i < n * P; ++i) SetFlagRow((row0 + i) * S, windows.flags.Row(i), delta);
  // Rows moved while a launched step writes them: unknown until rewritten, here and at the old
  // place, where the device writes them (a later owner's Sync compares).
  if (moved && !fresh && sl.flight_from < sl.flight_to) {
    for (int64_t p = sl.flight_from; p < sl.flight_to; ++p) {
      std::fill_n(mirror_.flags.begin() + sl.flag_zero + p * S, S, kUnknownFlag);
      std::fill_n(mirror_.flags.begin() + old_zero + p * S, S, kUnknownFlag);
    }
    refresh_.push_back({slot, sl.flight_from, sl.flight_to});
  }
}

}  // namespace rami::kv
