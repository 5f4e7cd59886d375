// The KV entries of one sequence's (layer, KV head) streams in the DMS layout (dms.md §4) — per
// stream a compact *kept* list (KvStream), per sequence the streams' *windows* (SequenceWindows:
// ordered, one flag per window slot) — and every operation on them: page needs, reservation, the
// end-of-step commit (promote or drop the tokens that left the window, release emptied pages),
// fork and release.
//
// Window geometry: window slot i holds position base + i; after `length` tokens the window holds
// positions [WindowStart(length), length). A window page is released once all its positions have
// left; the kept list only grows (append-only, full pages immutable). The geometry depends on the
// length alone, so it is the same in every stream of a sequence: the windows are kept together,
// row-major (StreamRows: row j of the pages is window page j of every stream), and a step's work
// on them — the tokens leaving, the pages at the front, the decisions — is a row per sequence.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "worker/kv/cache_policy.h"
#include "worker/kv/kv_page_pool.h"
#include "worker/kv/stream_rows.h"

namespace rami::kv {

// One stream's kept list.
struct KvStream {
  std::vector<int32_t> kept_pages;
  int32_t kept = 0;  // tokens in the kept list
  // kept_pages[kept / page_size] if reserved, else −1: the page the next kept token goes to,
  // read by a commit's promotion without touching kept_pages' block (one load missing the cache
  // per promoted stream otherwise). Kept by the functions below.
  int32_t next_kept_page = -1;
};

// The windows of one sequence's streams (column c: stream c).
struct SequenceWindows {
  SequenceWindows() = default;
  // `flags`: the policy evicts (dense windows carry no flags).
  SequenceWindows(int streams, bool flags) : pages(streams), flags(flags ? streams : 0) {}

  int32_t base = 0;  // position of window slot 0
  PageRows pages;    // [window pages, streams]: page j holds slots [j·P, (j+1)·P)
  FlagRows flags;    // [window pages · P, streams]; no columns if nothing is evicted

  int64_t num_pages() const { return pages.rows(); }
  int streams() const { return pages.columns(); }
  // Stream c's flags (slot 0 at `base`); null data without flags.
  ConstWindowFlags FlagsOf(int c) const {
    return flags.columns() == 0 ? ConstWindowFlags() : flags.Column(c);
  }
};

// Geometry shared by all streams of a cache.
struct StreamRules {
  CachePolicy policy;
  int page_size = 16;

  // Oldest position still in the window once `length` tokens are cached.
  int32_t WindowStart(int64_t length) const {
    if (!policy.evicts() || length == 0) return 0;
    return static_cast<int32_t>(std::max<int64_t>(0, length - 1 - policy.window));
  }
  int64_t PagesFor(int64_t tokens) const { return (tokens + page_size - 1) / page_size; }
};

// Positions [first, end) leave the window while a sequence of `length` tokens appends `count`:
// the same in every stream of the sequence, so computed once for all of them.
struct Leaving {
  Leaving(int64_t length, int64_t count, const StreamRules& r)
      : first(r.WindowStart(length)), end(r.WindowStart(length + count)) {}
  int64_t first, end;
};

// Live tokens of the stream: kept + window (dms.md §3: kept + min(t+1, W+1)).
int64_t LiveTokens(const KvStream& s, int64_t length, const StreamRules& r);

// --- Reservation. Pages that appending `count` tokens may allocate: the windows' growth (exact,
// per stream), and a stream's kept growth counting every leaving token whose flag is not yet
// known as kept. Exact for a decode step when W ≥ 1 (the leaving token's flag was fixed W steps
// earlier). `flags`: the stream's (SequenceWindows::FlagsOf), read at window base `base`.
int64_t WindowPagesAfter(const SequenceWindows& w, int64_t length, int64_t count,
                         const StreamRules& r);
int64_t KeptPagesToAppend(const KvStream& s, ConstWindowFlags flags, int32_t base, int64_t length,
                          int64_t count, const StreamRules& r);
// Allocate those pages (the caller checked they are free). The windows' new rows of flags are
// pending (0); the window policy's are written here, a new page's all at once (they depend on the
// position only, so appending to a page changes no flag).
void ReserveKept(KvStream& s, ConstWindowFlags flags, int32_t base, int64_t length, int64_t count,
                 const StreamRules& r, OwnedPages pool);
void ReserveWindows(SequenceWindows& w, int64_t length, int64_t count, const StreamRules& r,
                    OwnedPages pool);

// --- Commit, after a step appended `count` tokens to a sequence of `length` (K/V written,
// flags set). CommitKept moves stream `c`'s tokens that left the window to its kept list
// (flag 0; copies K/V) or drops them (flag 1) and returns its unused reserved kept pages; then
// CommitWindows releases the emptied front pages of every window and any unused reservation.
void CommitKept(KvStream& s, int c, const SequenceWindows& w, Leaving leaving, const StreamRules& r,
                OwnedPages pool);
// Window pages the commit to `end` tokens releases at the front (of each stream).
int64_t WindowPagesLeaving(const SequenceWindows& w, int64_t end, const StreamRules& r);
void CommitWindows(SequenceWindows& w, int64_t end, const StreamRules& r, OwnedPages pool);

// --- A failed step: the reserved pages it did not use go back (the sequence keeps `length`
// tokens), and the pending flag of the newest token, which the step may have written, is reset.
void TrimKept(KvStream& s, const StreamRules& r, OwnedPages pool);
void TrimWindows(SequenceWindows& w, int64_t length, const StreamRules& r, OwnedPages pool);

// --- Fork: a child shares every full page (reference counted) and copies the partial tails;
// `pool` is the child's. Pages one child allocates: ForkKeptPages per stream, ForkWindowPages
// per stream.
int64_t ForkKeptPages(const KvStream& s, const StreamRules& r);
int64_t ForkWindowPages(const SequenceWindows& w, int64_t length, const StreamRules& r);
KvStream ForkKept(const KvStream& s, const StreamRules& r, OwnedPages pool);
SequenceWindows ForkWindows(const SequenceWindows& w, int64_t length, const StreamRules& r,
                            OwnedPages pool);

void ReleaseKept(KvStream& s, OwnedPages pool);
void ReleaseWindows(SequenceWindows& w, OwnedPages pool);

// --- Needs of the next k decode steps (one token each; step i appends position length + i),
// added to needs[i] for i < k: a stream's kept pages (exact while the leaving token's flag is
// known, i < W; the worst case after) and the pages each window allocates. `leaving`: k
// entries, leaving[i] = Leaving(length + i, 1, r).
std::vector<Leaving> DecodeLeaving(int64_t length, const StreamRules& r, int k);
void AddDecodeKeptNeeds(const KvStream& s, ConstWindowFlags flags, int32_t base, int64_t length,
                        const Leaving* leaving, const StreamRules& r, int k, int64_t* needs);
void AddDecodeWindowNeeds(const SequenceWindows& w, int64_t length, const StreamRules& r, int k,
                          int64_t* needs);

}  // namespace rami::kv
