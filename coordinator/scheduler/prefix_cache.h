// PrefixCache: one worker group's index of cached prompt prefixes (issue "prefix caching on
// compressed DMS snapshots"). Each entry is a frozen worker sequence — a snapshot — holding the
// KV of exactly `tokens` under the group's cache policy, plus the logits of its last position;
// a job whose prompt starts with those tokens is created as a copy of it and prefills only the
// rest. Pure bookkeeping: the Scheduler decides when entries are made, used and freed, and the
// workers hold the pages.
//
// Why exact prefixes only: a DMS or window snapshot taken at position P cannot serve a shorter
// prefix p < P — the window at p needs tokens that were dropped by P — so reuse happens at the
// snapshot points a job marks (docs/prefix-cache.md), not at any page boundary.
//
// Scope: an entry is visible only to jobs of the same scope (the API key, and the request's
// cache_salt), so that one client's time to first token cannot reveal another's prompts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/types/span.h"
#include "coordinator/scheduler/job.h"

namespace rami::coordinator {

struct PrefixEntry {
  SeqId seq = -1;
  std::string scope;
  std::vector<int32_t> tokens;  // the cached prefix
  int64_t pages = 0;            // pages it is expected to hold (Capacity's projection)
  uint64_t last_used = 0;       // the step that last made or copied it (LRU)
  // The first step whose plan may copy it: a snapshot exists only after the forward pass of
  // the step that takes it, so that step's plan must not copy it yet.
  uint64_t usable_from = 0;
};

class PrefixCache {
 public:
  // The longest entry of `scope` whose tokens are a prefix of `prompt` (a whole-prompt entry
  // included) that step `step` may copy; null when none.
  const PrefixEntry* Longest(const std::string& scope, absl::Span<const int32_t> prompt,
                             uint64_t step) const;
  // The entry of `scope` holding exactly `tokens`, or null.
  const PrefixEntry* Find(const std::string& scope, absl::Span<const int32_t> tokens) const;
  const PrefixEntry* Get(SeqId seq) const;

  // A new entry made in step `step` (no entry of the scope holds these tokens: check Find
  // first), usable from step `usable_from`.
  void Insert(const std::string& scope, std::vector<int32_t> tokens, SeqId seq, uint64_t step,
              int64_t pages, uint64_t usable_from);
  void Touch(SeqId seq, uint64_t step);
  // Removes and returns the least recently used entry not used in step `protect` (its
  // sequence is to be freed); null seq (-1) when there is none.
  PrefixEntry EvictLru(uint64_t protect);

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  int64_t pages() const { return pages_; }                  // Σ entry pages
  int64_t cached_tokens() const { return cached_tokens_; }  // Σ entry tokens

 private:
  void Erase(std::map<SeqId, PrefixEntry>::iterator it);

  std::map<SeqId, PrefixEntry> entries_;
  std::unordered_multimap<uint64_t, SeqId> by_hash_;  // hash of (scope, tokens) → entry
  std::map<int64_t, int> lengths_;                    // prefix length → entries of that length
  int64_t pages_ = 0;
  int64_t cached_tokens_ = 0;
};

}  // namespace rami::coordinator
