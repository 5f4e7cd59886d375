// Sequence-level bookkeeping of the KV-cache shard; per-stream rules live in kv_stream.cc.
#include "worker/kv/kv_cache.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace rami::kv {
namespace {

absl::Status UnknownSequence(SeqId id) {
  return absl::NotFoundError(absl::StrCat("unknown sequence ", id));
}

absl::Status OutOfPages(const KvPagePool& pool, int64_t need, const char* what) {
  return absl::ResourceExhaustedError(absl::StrCat("KV cache: ", what, " needs ", need, " pages, ",
                                                   pool.free_pages(), " of ", pool.num_pages(),
                                                   " are free"));
}

}  // namespace

KvCache::KvCache(const KvPoolConfig& pool_config, int num_layers, int num_kv_heads, int head_dim,
                 const CachePolicy& policy, bool store_values)
    : num_layers_(num_layers),
      num_kv_heads_(num_kv_heads),
      rules_{policy, pool_config.page_size},
      pool_(pool_config, head_dim, store_values) {}

absl::Status KvCache::AddSequence(SeqId id) {
  if (Contains(id)) return absl::AlreadyExistsError(absl::StrCat("sequence ", id, " exists"));
  seqs_[id].streams.resize(static_cast<size_t>(num_layers_) * num_kv_heads_);
  return absl::OkStatus();
}

absl::Status KvCache::FreeSequence(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return UnknownSequence(id);
  for (KvStream& stream : it->second.streams) ReleaseStream(stream, pool_);
  seqs_.erase(it);
  return absl::OkStatus();
}

int64_t KvCache::Length(SeqId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second.length;
}

int64_t KvCache::ForkPageBound(SeqId parent) const {
  auto it = seqs_.find(parent);
  if (it == seqs_.end()) return 0;
  int64_t pages = 0;
  for (const KvStream& s : it->second.streams) pages += ForkPages(s, it->second.length, rules_);
  return pages;
}

absl::Status KvCache::Fork(SeqId parent, absl::Span<const SeqId> children) {
  auto it = seqs_.find(parent);
  if (it == seqs_.end()) return UnknownSequence(parent);
  std::set<SeqId> unique;
  for (SeqId child : children) {
    if (Contains(child) || !unique.insert(child).second) {
      return absl::AlreadyExistsError(absl::StrCat("fork: sequence ", child, " exists"));
    }
  }
  const int64_t need = ForkPageBound(parent) * static_cast<int64_t>(children.size());
  if (need > pool_.free_pages()) return OutOfPages(pool_, need, "fork");
  const Sequence& root = it->second;
  for (SeqId id : children) {
    Sequence child;
    child.length = root.length;
    child.decided = root.decided;
    child.evicted = root.evicted;
    child.streams.reserve(root.streams.size());
    for (const KvStream& s : root.streams) {
      child.streams.push_back(ForkStream(s, root.length, rules_, pool_));
    }
    seqs_.emplace(id, std::move(child));
  }
  return absl::OkStatus();
}

int64_t KvCache::PagesToAppend(SeqId id, int64_t count) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return 0;
  int64_t pages = 0;
  for (const KvStream& s : it->second.streams) {
    pages += AppendPageBound(s, it->second.length, count, rules_);
  }
  return pages;
}

absl::Status KvCache::ReserveAppend(absl::Span<const std::pair<SeqId, int64_t>> appends) {
  int64_t total = 0;
  for (const auto& [id, count] : appends) {
    if (!Contains(id)) return UnknownSequence(id);
    total += PagesToAppend(id, count);
  }
  if (total > pool_.free_pages()) return OutOfPages(pool_, total, "the step");
  for (const auto& [id, count] : appends) {
    Sequence& seq = seqs_.at(id);
    for (KvStream& s : seq.streams) rami::kv::ReserveAppend(s, seq.length, count, rules_, pool_);
  }
  return absl::OkStatus();
}

void KvCache::CommitAppend(SeqId id, int64_t count) {
  Sequence& seq = seqs_.at(id);
  StreamStepStats stats;
  for (KvStream& s : seq.streams)
    rami::kv::CommitAppend(s, seq.length, count, rules_, pool_, &stats);
  seq.length += count;
  seq.decided += stats.decided;
  seq.evicted += stats.evicted;
}

void KvCache::AbortAppend(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  for (KvStream& s : it->second.streams) TrimReserved(s, it->second.length, rules_, pool_);
}

std::vector<int64_t> KvCache::DecodePageNeeds(absl::Span<const SeqId> ids, int k) const {
  std::vector<int64_t> needs(std::max(k, 0), 0);
  for (SeqId id : ids) {
    auto it = seqs_.find(id);
    if (it == seqs_.end()) continue;
    for (const KvStream& s : it->second.streams) {
      AddDecodePageNeeds(s, it->second.length, rules_, k, needs.data());
    }
  }
  return needs;
}

StepStreams KvCache::BuildStepStreams(absl::Span<const SeqId> batch) {
  StepStreams out;
  const size_t streams = batch.size() * num_layers_ * num_kv_heads_;
  for (auto* v : {&out.kept_page_start, &out.kept_count, &out.window_page_start, &out.window_base,
                  &out.window_start}) {
    v->reserve(streams);
  }
  for (SeqId id : batch) {
    Sequence& seq = seqs_.at(id);
    const int32_t window_start = rules_.WindowStart(seq.length);
    for (KvStream& s : seq.streams) {
      out.kept_page_start.push_back(static_cast<int32_t>(out.page_table.size()));
      out.page_table.insert(out.page_table.end(), s.kept_pages.begin(), s.kept_pages.end());
      out.kept_count.push_back(s.kept);
      out.window_page_start.push_back(static_cast<int32_t>(out.page_table.size()));
      out.page_table.insert(out.page_table.end(), s.window_pages.begin(), s.window_pages.end());
      out.window_base.push_back(s.window_base);
      out.window_start.push_back(window_start);
      if (rules_.policy.evicts()) out.window_flags.push_back(s.flags.data());
    }
  }
  return out;
}

kernels::KvStreamsView KvCache::View(const StepStreams& st) {
  return {.k_pool = pool_.k_data(),
          .v_pool = pool_.v_data(),
          .page_table = st.page_table.data(),
          .kept_page_start = st.kept_page_start.data(),
          .kept_count = st.kept_count.data(),
          .window_page_start = st.window_page_start.data(),
          .window_base = st.window_base.data(),
          .window_start = st.window_start.data(),
          .window_flags = st.window_flags.empty() ? nullptr : st.window_flags.data(),
          .page_size = pool_.page_size(),
          .head_dim = pool_.head_dim(),
          .window = rules_.policy.window};
}

int64_t KvCache::StreamLive(SeqId id, int layer, int head) const {
  const Sequence& seq = seqs_.at(id);
  return LiveTokens(seq.streams[static_cast<size_t>(layer) * num_kv_heads_ + head], seq.length,
                    rules_);
}

SequenceStats KvCache::SequenceStatsOf(SeqId id) const {
  SequenceStats st;
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return st;
  const Sequence& seq = it->second;
  st.logical_tokens = seq.length;
  st.decided = seq.decided;
  st.evicted = seq.evicted;
  st.live_min = seq.length;
  double fraction_sum = 0.0;
  for (const KvStream& s : seq.streams) {
    const int64_t live = LiveTokens(s, seq.length, rules_);
    st.live_min = std::min(st.live_min, live);
    st.live_max = std::max(st.live_max, live);
    st.live_sum += live;
    st.page_refs += static_cast<int64_t>(s.kept_pages.size() + s.window_pages.size());
    for (const std::vector<int32_t>* list : {&s.kept_pages, &s.window_pages}) {
      for (int32_t page : *list) st.unshared_pages += pool_.ref_count(page) == 1 ? 1 : 0;
    }
    fraction_sum += seq.length > 0 ? static_cast<double>(live) / seq.length : 1.0;
  }
  st.live_fraction = fraction_sum / static_cast<double>(seq.streams.size());
  return st;
}

CacheStats KvCache::Stats() const {
  CacheStats st;
  st.num_pages = pool_.num_pages();
  st.free_pages = pool_.free_pages();
  st.pages_in_use = pool_.pages_in_use();
  st.num_sequences = num_sequences();
  double fraction_sum = 0.0;
  int64_t decided = 0, evicted = 0, counted = 0;
  for (const auto& [id, seq] : seqs_) {
    const SequenceStats s = SequenceStatsOf(id);
    st.logical_tokens += s.logical_tokens;
    st.live_tokens += s.live_sum;
    decided += s.decided;
    evicted += s.evicted;
    if (seq.length == 0) continue;
    fraction_sum += s.live_fraction;
    ++counted;
  }
  if (counted > 0 && fraction_sum > 0) st.compression_ratio = counted / fraction_sum;
  if (decided > 0) st.eviction_rate = static_cast<double>(evicted) / decided;
  return st;
}

}  // namespace rami::kv
