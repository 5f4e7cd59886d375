// Operations on a sequence's DMS-layout streams; see kv_stream.h for the geometry.
#include "worker/kv/kv_stream.h"

#include <algorithm>

#include "base/check.h"

namespace rami::kv {
namespace {

// Whether the token at `position` will be kept once it leaves the window, as far as is known
// before a step that appends to a stream of `length` tokens: the window policy decides by
// position; DMS flags are fixed for positions ≤ length − 2 (the newest one is pending and
// the step's own tokens are decided during the step) — unknown counts as kept (worst case).
bool MayBeKept(ConstWindowFlags flags, int32_t base, int64_t position, int64_t length,
               const StreamRules& r) {
  if (r.policy.flags_by_position()) return r.policy.PositionFlag(position) == 0;
  if (position <= length - 2) return flags[position - base] == 0;
  return true;
}

std::vector<int32_t> Allocate(int64_t count, OwnedPages pool) {
  if (count <= 0) return {};
  absl::StatusOr<std::vector<int32_t>> pages = pool.Allocate(static_cast<int>(count));
  RAMI_CHECK(pages.ok(), "%s", pages.status().ToString().c_str());  // checked by the caller
  return *std::move(pages);
}

// A private copy of the first `used` slots of the shared page `page` (whose reference it drops).
int32_t CopyPage(int32_t page, int used, OwnedPages pool) {
  const int32_t fresh = Allocate(1, pool)[0];
  pool.CopySlots(page, fresh, used);
  pool.Release(page);
  return fresh;
}

// Kept tokens after the tokens leaving the window on appending `count` tokens, as far as known.
int64_t KeptBound(const KvStream& s, ConstWindowFlags flags, int32_t base, int64_t length,
                  int64_t count, const StreamRules& r) {
  int64_t kept = s.kept;
  for (int64_t p = r.WindowStart(length); p < r.WindowStart(length + count); ++p) {
    if (MayBeKept(flags, base, p, length, r)) ++kept;
  }
  return kept;
}

// Sets s.next_kept_page after kept or kept_pages changed.
void FindNextKeptPage(KvStream& s, const StreamRules& r) {
  const size_t j = static_cast<size_t>(s.kept / r.page_size);
  s.next_kept_page = j < s.kept_pages.size() ? s.kept_pages[j] : -1;
}

// Releases window rows [from, to) of every stream.
void ReleaseWindowRows(const SequenceWindows& w, int64_t from, int64_t to, OwnedPages pool) {
  for (int64_t j = from; j < to; ++j) {
    const int32_t* row = w.pages.Row(j);
    for (int c = 0; c < w.streams(); ++c) pool.Release(row[c]);
  }
}

// Sizes the flags to the window pages; with the window policy, new rows get their flags.
void SizeFlags(SequenceWindows& w, const StreamRules& r) {
  if (w.flags.columns() == 0) return;
  const int64_t had = w.flags.rows();
  w.flags.Resize(w.num_pages() * r.page_size);
  if (!r.policy.flags_by_position()) return;  // dms: new tokens are pending (keep)
  for (int64_t row = had; row < w.flags.rows(); ++row) {
    uint8_t* flags = w.flags.Row(row);
    std::fill(flags, flags + w.flags.columns(), r.policy.PositionFlag(w.base + row));
  }
}

// Trims the window pages past the first `length` positions (and their flags).
void TrimWindowPages(SequenceWindows& w, int64_t length, const StreamRules& r, OwnedPages pool) {
  const int64_t keep = std::min(w.num_pages(), r.PagesFor(length - w.base));
  ReleaseWindowRows(w, keep, w.num_pages(), pool);
  w.pages.Resize(keep);
  SizeFlags(w, r);
}

}  // namespace

int64_t LiveTokens(const KvStream& s, int64_t length, const StreamRules& r) {
  return s.kept + (length - r.WindowStart(length));
}

int64_t WindowPagesAfter(const SequenceWindows& w, int64_t length, int64_t count,
                         const StreamRules& r) {
  return std::max(w.num_pages(), r.PagesFor(length + count - w.base));
}

int64_t KeptPagesToAppend(const KvStream& s, ConstWindowFlags flags, int32_t base, int64_t length,
                          int64_t count, const StreamRules& r) {
  return std::max<int64_t>(0, r.PagesFor(KeptBound(s, flags, base, length, count, r)) -
                                  static_cast<int64_t>(s.kept_pages.size()));
}

void ReserveKept(KvStream& s, ConstWindowFlags flags, int32_t base, int64_t length, int64_t count,
                 const StreamRules& r, OwnedPages pool) {
  const std::vector<int32_t> pages =
      Allocate(KeptPagesToAppend(s, flags, base, length, count, r), pool);
  if (pages.empty()) return;
  s.kept_pages.insert(s.kept_pages.end(), pages.begin(), pages.end());
  FindNextKeptPage(s, r);
}

void ReserveWindows(SequenceWindows& w, int64_t length, int64_t count, const StreamRules& r,
                    OwnedPages pool) {
  const int64_t had = w.num_pages(), after = WindowPagesAfter(w, length, count, r);
  if (after == had) return;
  const std::vector<int32_t> pages = Allocate((after - had) * w.streams(), pool);
  w.pages.Resize(after);
  for (int64_t j = had; j < after; ++j) {
    std::copy_n(pages.begin() + (j - had) * w.streams(), w.streams(), w.pages.Row(j));
  }
  SizeFlags(w, r);
}

void CommitKept(KvStream& s, int c, const SequenceWindows& w, Leaving leaving, const StreamRules& r,
                OwnedPages pool) {
  // Tokens that left the window: kept (copied to the kept list) or dropped.
  const ConstWindowFlags flags = w.FlagsOf(c);
  for (int64_t p = leaving.first; p < leaving.end; ++p) {
    const int64_t slot = p - w.base;
    if (flags[slot] != 0) continue;
    RAMI_CHECK(s.next_kept_page >= 0, "kept list of %d tokens has no reserved page", s.kept);
    pool.CopySlot(w.pages.Row(slot / r.page_size)[c], static_cast<int>(slot % r.page_size),
                  s.next_kept_page, s.kept % r.page_size);
    if (++s.kept % r.page_size == 0) FindNextKeptPage(s, r);
  }
  TrimKept(s, r, pool);
}

int64_t WindowPagesLeaving(const SequenceWindows& w, int64_t end, const StreamRules& r) {
  if (!r.policy.evicts()) return 0;
  return std::clamp<int64_t>((r.WindowStart(end) - w.base) / r.page_size, 0, w.num_pages());
}

void CommitWindows(SequenceWindows& w, int64_t end, const StreamRules& r, OwnedPages pool) {
  const int64_t emptied = WindowPagesLeaving(w, end, r);
  ReleaseWindowRows(w, 0, emptied, pool);
  w.pages.DropFront(emptied);
  w.flags.DropFront(std::min(w.flags.rows(), emptied * r.page_size));
  w.base += static_cast<int32_t>(emptied * r.page_size);
  TrimWindows(w, end, r, pool);
}

void TrimKept(KvStream& s, const StreamRules& r, OwnedPages pool) {
  if (static_cast<int64_t>(s.kept_pages.size()) <= r.PagesFor(s.kept)) return;
  while (static_cast<int64_t>(s.kept_pages.size()) > r.PagesFor(s.kept)) {
    pool.Release(s.kept_pages.back());
    s.kept_pages.pop_back();
  }
  FindNextKeptPage(s, r);
}

void TrimWindows(SequenceWindows& w, int64_t length, const StreamRules& r, OwnedPages pool) {
  TrimWindowPages(w, length, r, pool);
  // The pending flag of the newest token: a failed step may have written it.
  if (r.policy.kind == CachePolicyKind::kDms && length > 0) {
    uint8_t* row = w.flags.Row(length - 1 - w.base);
    std::fill(row, row + w.flags.columns(), uint8_t{0});
  }
}

int64_t ForkKeptPages(const KvStream& s, const StreamRules& r) {
  return s.kept % r.page_size != 0 ? 1 : 0;
}

int64_t ForkWindowPages(const SequenceWindows& w, int64_t length, const StreamRules& r) {
  const int64_t used = length - w.base;
  return used > 0 && used % r.page_size != 0 ? 1 : 0;
}

KvStream ForkKept(const KvStream& s, const StreamRules& r, OwnedPages pool) {
  KvStream child = s;
  for (int32_t page : child.kept_pages) pool.Retain(page);
  // The tail page still receives tokens: each child gets its own copy of the filled part.
  if (child.kept % r.page_size != 0) {
    child.kept_pages.back() = CopyPage(child.kept_pages.back(), child.kept % r.page_size, pool);
  }
  FindNextKeptPage(child, r);
  return child;
}

SequenceWindows ForkWindows(const SequenceWindows& w, int64_t length, const StreamRules& r,
                            OwnedPages pool) {
  SequenceWindows child;
  child.base = w.base;
  child.pages = w.pages.Copy();
  child.flags = w.flags.Copy();
  for (int64_t j = 0; j < child.num_pages(); ++j) {
    const int32_t* row = child.pages.Row(j);
    for (int c = 0; c < child.streams(); ++c) pool.Retain(row[c]);
  }
  if (ForkWindowPages(w, length, r) != 0) {  // a partial tail page: copied in every stream
    int32_t* tail = child.pages.Row(child.num_pages() - 1);
    const int used = static_cast<int>((length - w.base) % r.page_size);
    for (int c = 0; c < child.streams(); ++c) tail[c] = CopyPage(tail[c], used, pool);
  }
  return child;
}

void ReleaseKept(KvStream& s, OwnedPages pool) {
  for (int32_t page : s.kept_pages) pool.Release(page);
  s = KvStream();
}

void ReleaseWindows(SequenceWindows& w, OwnedPages pool) {
  ReleaseWindowRows(w, 0, w.num_pages(), pool);
  w = SequenceWindows(w.streams(), w.flags.columns() != 0);
}

std::vector<Leaving> DecodeLeaving(int64_t length, const StreamRules& r, int k) {
  std::vector<Leaving> leaving;
  for (int i = 0; i < k; ++i) leaving.emplace_back(length + i, 1, r);
  return leaving;
}

void AddDecodeKeptNeeds(const KvStream& s, ConstWindowFlags flags, int32_t base, int64_t length,
                        const Leaving* leaving, const StreamRules& r, int k, int64_t* needs) {
  int64_t kept = s.kept;
  int64_t kept_pages = static_cast<int64_t>(s.kept_pages.size());
  for (int i = 0; i < k; ++i) {
    for (int64_t p = leaving[i].first; p < leaving[i].end; ++p) {
      if (!MayBeKept(flags, base, p, length, r)) continue;
      if (++kept > kept_pages * r.page_size) {
        ++needs[i];
        ++kept_pages;
      }
    }
  }
}

void AddDecodeWindowNeeds(const SequenceWindows& w, int64_t length, const StreamRules& r, int k,
                          int64_t* needs) {
  int64_t pages = w.num_pages();
  int64_t base = w.base;
  for (int i = 0; i < k; ++i) {
    const int64_t position = length + i;
    if (position - base >= pages * r.page_size) {
      ++needs[i];
      ++pages;
    }
    while (pages > 0 && base + r.page_size <= r.WindowStart(position + 1)) {
      base += r.page_size;
      --pages;
    }
  }
}

}  // namespace rami::kv
