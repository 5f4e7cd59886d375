// PrefixCache: exact-prefix lookup by rolling hash, verified token for token; LRU eviction.
#include "coordinator/scheduler/prefix_cache.h"

#include <algorithm>

#include "base/check.h"

namespace rami::coordinator {
namespace {

// 64-bit mixing (splitmix64's finaliser): a collision only costs a token comparison.
uint64_t Mix(uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

uint64_t ScopeHash(const std::string& scope) {
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (unsigned char c : scope) h = Mix(h ^ c);
  return Mix(h ^ scope.size());
}

uint64_t Next(uint64_t h, int32_t token) { return Mix(h ^ static_cast<uint32_t>(token)); }

uint64_t HashOf(const std::string& scope, absl::Span<const int32_t> tokens) {
  uint64_t h = ScopeHash(scope);
  for (int32_t t : tokens) h = Next(h, t);
  return h;
}

}  // namespace

const PrefixEntry* PrefixCache::Find(const std::string& scope,
                                     absl::Span<const int32_t> tokens) const {
  auto [first, last] = by_hash_.equal_range(HashOf(scope, tokens));
  for (auto it = first; it != last; ++it) {
    const PrefixEntry& e = entries_.at(it->second);
    if (e.scope == scope && absl::MakeConstSpan(e.tokens) == tokens) return &e;
  }
  return nullptr;
}

const PrefixEntry* PrefixCache::Longest(const std::string& scope, absl::Span<const int32_t> prompt,
                                        uint64_t step) const {
  if (entries_.empty() || lengths_.begin()->first > static_cast<int64_t>(prompt.size())) {
    return nullptr;
  }
  // hashes[i]: the hash of prompt[0, i), for i up to the longest cached length that fits.
  auto fits = lengths_.upper_bound(static_cast<int64_t>(prompt.size()));
  const int64_t longest = std::prev(fits)->first;
  std::vector<uint64_t> hashes(static_cast<size_t>(longest) + 1);
  hashes[0] = ScopeHash(scope);
  for (int64_t i = 0; i < longest; ++i) hashes[i + 1] = Next(hashes[i], prompt[i]);
  for (auto len = std::make_reverse_iterator(fits); len != lengths_.rend(); ++len) {
    auto [first, last] = by_hash_.equal_range(hashes[len->first]);
    for (auto it = first; it != last; ++it) {
      const PrefixEntry& e = entries_.at(it->second);
      if (e.scope == scope && e.usable_from <= step &&
          static_cast<int64_t>(e.tokens.size()) == len->first &&
          std::equal(e.tokens.begin(), e.tokens.end(), prompt.begin())) {
        return &e;
      }
    }
  }
  return nullptr;
}

const PrefixEntry* PrefixCache::Get(SeqId seq) const {
  auto it = entries_.find(seq);
  return it == entries_.end() ? nullptr : &it->second;
}

void PrefixCache::Insert(const std::string& scope, std::vector<int32_t> tokens, SeqId seq,
                         uint64_t step, int64_t pages, uint64_t usable_from) {
  RAMI_CHECK(!entries_.count(seq) && !tokens.empty(), "prefix cache: bad insert of %lld",
             static_cast<long long>(seq));
  by_hash_.emplace(HashOf(scope, tokens), seq);
  ++lengths_[static_cast<int64_t>(tokens.size())];
  cached_tokens_ += static_cast<int64_t>(tokens.size());
  pages_ += pages;
  entries_[seq] = PrefixEntry{.seq = seq,
                              .scope = scope,
                              .tokens = std::move(tokens),
                              .pages = pages,
                              .last_used = step,
                              .usable_from = usable_from};
}

void PrefixCache::Touch(SeqId seq, uint64_t step) {
  auto it = entries_.find(seq);
  if (it != entries_.end()) it->second.last_used = std::max(it->second.last_used, step);
}

PrefixEntry PrefixCache::EvictLru(uint64_t protect) {
  auto victim = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.last_used == protect) continue;
    if (victim == entries_.end() || it->second.last_used < victim->second.last_used) victim = it;
  }
  if (victim == entries_.end()) return {};
  PrefixEntry out = victim->second;
  Erase(victim);
  return out;
}

void PrefixCache::Erase(std::map<SeqId, PrefixEntry>::iterator it) {
  const PrefixEntry& e = it->second;
  auto [first, last] = by_hash_.equal_range(HashOf(e.scope, e.tokens));
  for (auto h = first; h != last; ++h) {
    if (h->second == e.seq) {
      by_hash_.erase(h);
      break;
    }
  }
  const int64_t len = static_cast<int64_t>(e.tokens.size());
  if (--lengths_[len] == 0) lengths_.erase(len);
  pages_ -= e.pages;
  cached_tokens_ -= len;
  entries_.erase(it);
}

}  // namespace rami::coordinator
