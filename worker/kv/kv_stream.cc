// Operations on one DMS-layout stream; see kv_stream.h for the geometry.
#include "worker/kv/kv_stream.h"

#include <algorithm>

#include "base/check.h"

namespace rami::kv {
namespace {

// Whether the token at `position` will be kept once it leaves the window, as far as is known
// before a step that appends to a stream of `length` tokens: the window policy decides by
// position; DMS flags are fixed for positions ≤ length − 2 (the newest one is pending and
// the step's own tokens are decided during the step) — unknown counts as kept (worst case).
bool MayBeKept(const KvStream& s, ConstWindowFlags flags, int64_t position, int64_t length,
               const StreamRules& r) {
  if (r.policy.flags_by_position()) return r.policy.PositionFlag(position) == 0;
  if (position <= length - 2) return flags[position - s.window_base] == 0;
  return true;
}

void AllocateInto(std::vector<int32_t>& list, int64_t count, OwnedPages pool) {
  if (count <= 0) return;
  absl::StatusOr<std::vector<int32_t>> pages = pool.Allocate(static_cast<int>(count));
  RAMI_CHECK(pages.ok(), "%s", pages.status().ToString().c_str());  // checked by the caller
  list.insert(list.end(), pages->begin(), pages->end());
}

// Replaces the shared last page of `list` by a private copy of its first `used` slots.
void CopyTail(std::vector<int32_t>& list, int used, OwnedPages pool) {
  std::vector<int32_t> fresh;
  AllocateInto(fresh, 1, pool);
  pool.CopySlots(list.back(), fresh[0], used);
  pool.Release(list.back());
  list.back() = fresh[0];
}

}  // namespace

int32_t StreamRules::WindowStart(int64_t length) const {
  if (!policy.evicts() || length == 0) return 0;
  return static_cast<int32_t>(std::max<int64_t>(0, length - 1 - policy.window));
}

int64_t LiveTokens(const KvStream& s, int64_t length, const StreamRules& r) {
  return s.kept + (length - r.WindowStart(length));
}

int64_t WindowPagesAfter(const KvStream& s, int64_t length, int64_t count, const StreamRules& r) {
  return std::max<int64_t>(static_cast<int64_t>(s.window_pages.size()),
                           r.PagesFor(length + count - s.window_base));
}

int64_t AppendPageBound(const KvStream& s, ConstWindowFlags flags, int64_t length, int64_t count,
                        const StreamRules& r) {
  const int64_t window_pages =
      WindowPagesAfter(s, length, count, r) - static_cast<int64_t>(s.window_pages.size());
  int64_t kept = s.kept;
  for (int64_t p = r.WindowStart(length); p < r.WindowStart(length + count); ++p) {
    if (MayBeKept(s, flags, p, length, r)) ++kept;
  }
  const int64_t kept_pages =
      std::max<int64_t>(0, r.PagesFor(kept) - static_cast<int64_t>(s.kept_pages.size()));
  return window_pages + kept_pages;
}

void ReserveAppend(KvStream& s, ConstWindowFlags flags, int64_t length, int64_t count,
                   const StreamRules& r, OwnedPages pool) {
  AllocateInto(s.window_pages,
               WindowPagesAfter(s, length, count, r) - static_cast<int64_t>(s.window_pages.size()),
               pool);
  int64_t kept = s.kept;
  for (int64_t p = r.WindowStart(length); p < r.WindowStart(length + count); ++p) {
    if (MayBeKept(s, flags, p, length, r)) ++kept;
  }
  AllocateInto(s.kept_pages, r.PagesFor(kept) - static_cast<int64_t>(s.kept_pages.size()), pool);
}

int64_t WindowPagesLeaving(const KvStream& s, int64_t end, const StreamRules& r) {
  if (!r.policy.evicts()) return 0;
  const int64_t left = (r.WindowStart(end) - s.window_base) / r.page_size;
  return std::clamp<int64_t>(left, 0, static_cast<int64_t>(s.window_pages.size()));
}

void CommitAppend(KvStream& s, ConstWindowFlags flags, int64_t length, int64_t count,
                  const StreamRules& r, OwnedPages pool) {
  const int64_t end = length + count;
  if (r.policy.evicts()) {
    // Tokens that left the window: kept (copied to the kept list) or dropped.
    for (int64_t p = r.WindowStart(length); p < r.WindowStart(end); ++p) {
      const int32_t slot = static_cast<int32_t>(p - s.window_base);
      if (flags[slot] != 0) continue;
      RAMI_CHECK(static_cast<size_t>(s.kept / r.page_size) < s.kept_pages.size(),
                 "kept list of %d tokens has no reserved page", s.kept);
      pool.CopySlot(s.window_pages[slot / r.page_size], slot % r.page_size,
                    s.kept_pages[s.kept / r.page_size], s.kept % r.page_size);
      ++s.kept;
    }
    // Window pages whose positions have all left.
    const int64_t emptied = WindowPagesLeaving(s, end, r);
    for (int64_t j = 0; j < emptied; ++j) pool.Release(s.window_pages[j]);
    s.window_pages.erase(s.window_pages.begin(), s.window_pages.begin() + emptied);
    s.window_base += static_cast<int32_t>(emptied * r.page_size);
  }
  TrimReserved(s, end, r, pool);
}

void TrimReserved(KvStream& s, int64_t length, const StreamRules& r, OwnedPages pool) {
  while (static_cast<int64_t>(s.kept_pages.size()) > r.PagesFor(s.kept)) {
    pool.Release(s.kept_pages.back());
    s.kept_pages.pop_back();
  }
  while (static_cast<int64_t>(s.window_pages.size()) > r.PagesFor(length - s.window_base)) {
    pool.Release(s.window_pages.back());
    s.window_pages.pop_back();
  }
}

int64_t ForkPages(const KvStream& s, int64_t length, const StreamRules& r) {
  const int64_t window_used = length - s.window_base;
  return (s.kept % r.page_size != 0 ? 1 : 0) +
         (window_used > 0 && window_used % r.page_size != 0 ? 1 : 0);
}

KvStream ForkStream(const KvStream& s, int64_t length, const StreamRules& r, OwnedPages pool) {
  KvStream child = s;
  for (int32_t page : child.kept_pages) pool.Retain(page);
  for (int32_t page : child.window_pages) pool.Retain(page);
  // Tail pages still receive tokens: each child gets its own copy of the filled part.
  if (child.kept % r.page_size != 0) CopyTail(child.kept_pages, child.kept % r.page_size, pool);
  const int64_t window_used = length - child.window_base;
  if (window_used > 0 && window_used % r.page_size != 0) {
    CopyTail(child.window_pages, static_cast<int>(window_used % r.page_size), pool);
  }
  return child;
}

void ReleaseStream(KvStream& s, OwnedPages pool) {
  for (int32_t page : s.kept_pages) pool.Release(page);
  for (int32_t page : s.window_pages) pool.Release(page);
  s = KvStream();
}

void AddDecodePageNeeds(const KvStream& s, ConstWindowFlags flags, int64_t length,
                        const StreamRules& r, int k, int64_t* needs) {
  int64_t window_pages = static_cast<int64_t>(s.window_pages.size());
  int64_t base = s.window_base;
  int64_t kept = s.kept;
  int64_t kept_pages = static_cast<int64_t>(s.kept_pages.size());
  for (int i = 0; i < k; ++i) {
    const int64_t position = length + i;
    if (position - base >= window_pages * r.page_size) {
      ++needs[i];
      ++window_pages;
    }
    for (int64_t p = r.WindowStart(position); p < r.WindowStart(position + 1); ++p) {
      if (!MayBeKept(s, flags, p, length, r)) continue;
      if (++kept > kept_pages * r.page_size) {
        ++needs[i];
        ++kept_pages;
      }
    }
    while (window_pages > 0 && base + r.page_size <= r.WindowStart(position + 1)) {
      base += r.page_size;
      --window_pages;
    }
  }
}

}  // namespace rami::kv
