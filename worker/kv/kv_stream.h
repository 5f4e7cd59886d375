// KvStream: the KV entries of one (sequence, layer, KV head) in the DMS layout (dms.md §4) —
// a compact *kept* list and an ordered *window* with one flag per window slot — and every
// operation on it: page needs, reservation, the end-of-step commit (promote or drop the
// tokens that left the window, release emptied pages), fork and release.
//
// Window geometry: window slot i holds position window_base + i; after `length` tokens the
// window holds positions [WindowStart(length), length). A window page is released once all
// its positions have left; the kept list only grows (append-only, full pages immutable).
#pragma once

#include <cstdint>
#include <vector>

#include "worker/kv/cache_policy.h"
#include "worker/kv/kv_page_pool.h"

namespace rami::kv {

struct KvStream {
  std::vector<int32_t> kept_pages;
  int32_t kept = 0;                   // tokens in the kept list
  std::vector<int32_t> window_pages;  // page j holds window slots [j·P, (j+1)·P)
  int32_t window_base = 0;            // position of window slot 0
  std::vector<uint8_t> flags;         // [window_pages.size() · P]; empty if nothing is evicted
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
int64_t AppendPageBound(const KvStream& s, int64_t length, int64_t count, const StreamRules& r);

// Allocates AppendPageBound pages (the caller checked they are free) and sizes the flags;
// the window policy's flags are written here, a new page's all at once (they depend on the
// position only).
void ReserveAppend(KvStream& s, int64_t length, int64_t count, const StreamRules& r,
                   OwnedPages pool);

struct StreamStepStats {
  int64_t decided = 0;  // flags fixed by this step
  int64_t evicted = 0;  // of which 1
};

// After a step appended `count` tokens (K/V written, flags set): moves the tokens that left
// the window to kept (flag 0; copies K/V) or drops them (flag 1), releases emptied window
// pages and unused reserved kept pages.
void CommitAppend(KvStream& s, int64_t length, int64_t count, const StreamRules& r, OwnedPages pool,
                  StreamStepStats* stats);

// Returns reserved pages a failed step did not use (the stream keeps `length` tokens).
void TrimReserved(KvStream& s, int64_t length, const StreamRules& r, OwnedPages pool);

// Pages a fork of the stream allocates: its partially filled tail pages.
int64_t ForkPages(const KvStream& s, int64_t length, const StreamRules& r);
// A child sharing every full page (reference counted) with copies of the partial tails;
// `pool` is the child's.
KvStream ForkStream(const KvStream& s, int64_t length, const StreamRules& r, OwnedPages pool);

void ReleaseStream(KvStream& s, OwnedPages pool);

// Adds to needs[i] the pages decode step i (appending position length + i) will allocate,
// for i < k: exact while the leaving token's flag is known (i < W), the worst case after.
void AddDecodePageNeeds(const KvStream& s, int64_t length, const StreamRules& r, int k,
                        int64_t* needs);

}  // namespace rami::kv
