// KvStream: the KV pages of one (sequence, layer, KV head) in the DMS layout (dms.md §4) —
// a compact *kept* list and an ordered *window* with one flag per window slot — and every
// operation on it: page needs, reservation, the end-of-step commit (promote or drop the
// tokens that left the window, release emptied pages), fork and release.
//
// Window geometry: window slot i holds position window_base + i; after `length` tokens the
// window holds positions [WindowStart(length), length). A window page is released once all
// its positions have left; the kept list only grows (append-only, full pages immutable). The
// geometry is the same in every stream of a sequence (it depends on the length alone), so the
// window's flags live with the sequence, position-major (FlagRows): each operation here takes its
// stream's column, aligned with the stream's window_base, and the sequence sizes, slides and
// copies the rows (KvCache).
#pragma once

#include <cstdint>
#include <vector>

#include "worker/kv/cache_policy.h"
#include "worker/kv/flag_rows.h"
#include "worker/kv/kv_page_pool.h"

namespace rami::kv {

struct KvStream {
  std::vector<int32_t> kept_pages;
  int32_t kept = 0;                   // tokens in the kept list
  std::vector<int32_t> window_pages;  // page j holds window slots [j·P, (j+1)·P)
  int32_t window_base = 0;            // position of window slot 0
};

// Geometry shared by all streams of a cache.
struct StreamRules {
  CachePolicy policy;
  int page_size = 16;

  // Oldest position still in the window once `length` tokens are cached.
  int32_t WindowStart(int64_t length) const;
  int64_t PagesFor(int64_t tokens) const { return (tokens + page_size - 1) / page_size; }
};

// Live tokens of the stream: kept + window (dms.md §3: kept + min(t+1, W+1)).
int64_t LiveTokens(const KvStream& s, int64_t length, const StreamRules& r);

// Pages that appending `count` tokens may allocate: exact window growth, and kept growth
// counting every leaving token whose flag is not yet known as kept. Exact for a decode step
// when W ≥ 1 (the leaving token's flag was fixed W steps earlier).
// `flags`: the stream's (FlagRows::Column). Flags of evicting policies only; dense reads none.
int64_t AppendPageBound(const KvStream& s, ConstWindowFlags flags, int64_t length, int64_t count,
                        const StreamRules& r);

// Window pages the stream holds after appending `count` tokens: the same in every stream of the
// sequence (the flag rows are sized to it: WindowPagesAfter · P).
int64_t WindowPagesAfter(const KvStream& s, int64_t length, int64_t count, const StreamRules& r);

// Allocates AppendPageBound pages (the caller checked they are free); the caller has sized the
// flag rows to the new window (the window policy's flags written then, a new page's all at once:
// they depend on the position only).
void ReserveAppend(KvStream& s, ConstWindowFlags flags, int64_t length, int64_t count,
                   const StreamRules& r, OwnedPages pool);

// Window pages a commit that brings the stream to `end` tokens releases at the front (the same
// in every stream of the sequence: the caller drops as many pages of flag rows afterwards).
int64_t WindowPagesLeaving(const KvStream& s, int64_t end, const StreamRules& r);

// After a step appended `count` tokens (K/V written, flags set): moves the tokens that left
// the window to kept (flag 0; copies K/V) or drops them (flag 1), releases emptied window
// pages and unused reserved kept pages. `flags` is aligned with the window before the commit.
void CommitAppend(KvStream& s, ConstWindowFlags flags, int64_t length, int64_t count,
                  const StreamRules& r, OwnedPages pool);

// Returns reserved pages a failed step did not use (the stream keeps `length` tokens); the
// caller sizes the flag rows to the window left and resets the pending flag.
void TrimReserved(KvStream& s, int64_t length, const StreamRules& r, OwnedPages pool);

// Pages a fork of the stream allocates: its partially filled tail pages.
int64_t ForkPages(const KvStream& s, int64_t length, const StreamRules& r);
// A child sharing every full page (reference counted) with copies of the partial tails;
// `pool` is the child's (the caller copies the flag rows).
KvStream ForkStream(const KvStream& s, int64_t length, const StreamRules& r, OwnedPages pool);

void ReleaseStream(KvStream& s, OwnedPages pool);

// Adds to needs[i] the pages decode step i (appending position length + i) will allocate,
// for i < k: exact while the leaving token's flag is known (i < W), the worst case after.
void AddDecodePageNeeds(const KvStream& s, ConstWindowFlags flags, int64_t length,
                        const StreamRules& r, int k, int64_t* needs);

}  // namespace rami::kv
