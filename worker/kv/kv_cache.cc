// Sequence-level bookkeeping of the KV-cache shard; per-stream rules live in kv_stream.cc.
#include "worker/kv/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

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

KvCache::Sequence& KvCache::NewSequence(SeqId id) {
  Sequence& seq = seqs_[id];
  if (free_owners_.empty()) {
    seq.owner = next_owner_++;
  } else {
    seq.owner = free_owners_.back();
    free_owners_.pop_back();
  }
  seq.streams.resize(static_cast<size_t>(num_layers_) * num_kv_heads_);
  seq.windows = SequenceWindows(num_layers_ * num_kv_heads_, rules_.policy.evicts());
  return seq;
}

absl::Status KvCache::AddSequence(SeqId id) {
  if (Contains(id)) return absl::AlreadyExistsError(absl::StrCat("sequence ", id, " exists"));
  NewSequence(id);
  return absl::OkStatus();
}

absl::Status KvCache::FreeSequence(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return UnknownSequence(id);
  for (KvStream& stream : it->second.streams) ReleaseKept(stream, PagesOf(it->second));
  ReleaseWindows(it->second.windows, PagesOf(it->second));
  RAMI_CHECK(pool_.shared_pages(it->second.owner) == 0, "a freed sequence still shares pages");
  free_owners_.push_back(it->second.owner);
  seqs_.erase(it);
  return absl::OkStatus();
}

int64_t KvCache::Length(SeqId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second.length;
}

int64_t KvCache::PageRefs(SeqId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second.page_refs;
}

int64_t KvCache::ForkPageBound(SeqId parent) const {
  auto it = seqs_.find(parent);
  if (it == seqs_.end()) return 0;
  const Sequence& seq = it->second;
  int64_t pages = ForkWindowPages(seq.windows, seq.length, rules_) * seq.windows.streams();
  for (const KvStream& s : seq.streams) pages += ForkKeptPages(s, rules_);
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
  for (SeqId id : children) {
    const Sequence& root = seqs_.at(parent);  // std::map: not moved by the insertion
    Sequence& child = NewSequence(id);
    child.length = root.length;
    child.decided = root.decided;
    child.evicted = root.evicted;
    for (size_t i = 0; i < root.streams.size(); ++i) {
      child.streams[i] = ForkKept(root.streams[i], rules_, PagesOf(child));
    }
    child.windows = ForkWindows(root.windows, root.length, rules_, PagesOf(child));
    Summarize(child);
  }
  return absl::OkStatus();
}

int64_t KvCache::PagesToAppend(SeqId id, int64_t count) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return 0;
  // A decode step's need is exact in both computations when W ≥ 1.
  if (count == 1 && it->second.needs_valid && rules_.policy.window >= 1) {
    return it->second.decode_needs[0];
  }
  const Sequence& seq = it->second;
  const SequenceWindows& w = seq.windows;
  int64_t pages = (WindowPagesAfter(w, seq.length, count, rules_) - w.num_pages()) * w.streams();
  for (size_t i = 0; i < seq.streams.size(); ++i) {
    pages += KeptPagesToAppend(seq.streams[i], w.FlagsOf(static_cast<int>(i)), w.base, seq.length,
                               count, rules_);
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
    SequenceWindows& w = seq.windows;
    // The windows first: a new page in every stream changes them all.
    const int64_t window_pages = w.num_pages();
    ReserveWindows(w, seq.length, count, rules_, PagesOf(seq));
    if (w.num_pages() != window_pages) {
      seq.all_changed = true;
      seq.page_refs += (w.num_pages() - window_pages) * w.streams();
    }
    auto reserve = [&](size_t i) {
      KvStream& s = seq.streams[i];
      const size_t pages = s.kept_pages.size();
      ReserveKept(s, w.FlagsOf(static_cast<int>(i)), w.base, seq.length, count, rules_,
                  PagesOf(seq));
      if (s.kept_pages.size() != pages) MarkChanged(seq, i);
      seq.page_refs += static_cast<int64_t>(s.kept_pages.size()) - static_cast<int64_t>(pages);
    };
    // A decode step adds kept pages only where the last commit found a need: those lists alone.
    const bool known = count == 1 && seq.needs_valid && rules_.policy.window >= 1;
    seq.needs_valid = false;
    for (size_t i = 0; i < seq.streams.size(); ++i) {
      if (!known || seq.stream_needs[i] != 0) reserve(i);
    }
  }
  return absl::OkStatus();
}

void KvCache::WriteDecisions(Sequence& seq, int64_t start, int64_t count, const uint8_t* decisions,
                             size_t layer_stride) {
  // The token at position p decides the flag of p − 1: row p − 1 − window_base gets, for each
  // layer, the H decisions of the token (stream layer · H + h is column layer · H + h).
  const int32_t base = seq.windows.base;
  for (int64_t p = std::max<int64_t>(start, 1); p < start + count; ++p) {
    uint8_t* row = seq.windows.flags.Row(p - 1 - base);
    const uint8_t* d = decisions + (p - start) * num_kv_heads_;
    for (int layer = 0; layer < num_layers_; ++layer) {
      std::memcpy(row + static_cast<size_t>(layer) * num_kv_heads_, d + layer * layer_stride,
                  static_cast<size_t>(num_kv_heads_));
    }
  }
}

void KvCache::SetDecisions(SeqId id, int64_t start, int64_t count, const uint8_t* decisions,
                           size_t layer_stride) {
  WriteDecisions(seqs_.at(id), start, count, decisions, layer_stride);
}

void KvCache::CommitAppend(SeqId id, int64_t count, const uint8_t* decisions, size_t layer_stride) {
  Sequence& seq = seqs_.at(id);
  SequenceWindows& w = seq.windows;
  const int64_t end = seq.length + count;
  if (decisions != nullptr) WriteDecisions(seq, seq.length, count, decisions, layer_stride);
  if (rules_.policy.evicts()) {
    // Decisions of this step: α of tokens length … end−1 fixed the flags of the tokens before
    // them (the α of token 0 is discarded); a row per position, every stream's.
    for (int64_t p = std::max<int64_t>(seq.length - 1, 0); p < end - 1; ++p) {
      const uint8_t* row = w.flags.Row(p - w.base);
      int64_t evicted = 0;
      for (int c = 0; c < w.flags.columns(); ++c) evicted += row[c];
      seq.decided += w.flags.columns();
      seq.evicted += evicted;
    }
  }
  seq.decode_needs[0] = seq.decode_needs[1] = 0;
  seq.stream_needs.resize(seq.streams.size());
  // One pass over the kept lists: promotions, change marks, next needs, sums. The needs read the
  // flags before the windows slide (any window base with its own flags will do).
  ResetSums(seq);
  const Leaving leaving(seq.length, count, rules_);
  const Leaving next[2] = {Leaving(end, 1, rules_), Leaving(end + 1, 1, rules_)};
  for (size_t i = 0; i < seq.streams.size(); ++i) {
    KvStream& s = seq.streams[i];
    const int32_t kept = s.kept;
    const size_t kept_pages = s.kept_pages.size();
    CommitKept(s, static_cast<int>(i), w, leaving, rules_, PagesOf(seq));
    if (s.kept_pages.size() != kept_pages) {
      MarkChanged(seq, i);
    } else if (s.kept != kept) {
      MarkChanged(seq, i, kKeptChanged);
    }
    int64_t needs[2] = {0, 0};
    AddDecodeKeptNeeds(s, w.FlagsOf(static_cast<int>(i)), w.base, end, next, rules_, 2, needs);
    seq.decode_needs[0] += needs[0];
    seq.decode_needs[1] += needs[1];
    seq.stream_needs[i] = needs[0] > 0 ? 1 : 0;
    AddToSums(seq, s);
  }
  // Then the windows, all streams at once.
  const int64_t window_pages = w.num_pages();
  const int32_t base = w.base;
  CommitWindows(w, end, rules_, PagesOf(seq));
  if (w.num_pages() != window_pages || w.base != base) seq.all_changed = true;
  AddWindowSums(seq);
  int64_t window_needs[2] = {0, 0};
  AddDecodeWindowNeeds(w, end, rules_, 2, window_needs);
  seq.decode_needs[0] += window_needs[0] * w.streams();
  seq.decode_needs[1] += window_needs[1] * w.streams();
  seq.needs_valid = true;
  seq.length = end;
}

void KvCache::AbortAppend(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  Sequence& seq = it->second;
  for (KvStream& s : seq.streams) TrimKept(s, rules_, PagesOf(seq));
  TrimWindows(seq.windows, seq.length, rules_, PagesOf(seq));
  seq.all_changed = true;  // rare: a failed step
  seq.needs_valid = false;
  Summarize(seq);
}

void KvCache::MarkChanged(Sequence& seq, size_t stream, uint8_t how) {
  if (seq.all_changed) return;
  if (seq.changed_mark.size() != seq.streams.size()) seq.changed_mark.assign(seq.streams.size(), 0);
  if ((seq.changed_mark[stream] & how) != 0) return;
  seq.changed_mark[stream] |= how;
  (how == kChanged ? seq.changed : seq.kept_changed).push_back(static_cast<int32_t>(stream));
}

KvCache::StreamChanges KvCache::ChangesOf(SeqId id) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return {};
  return {it->second.all_changed, it->second.changed, it->second.kept_changed};
}

void KvCache::ClearChanges(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  Sequence& seq = it->second;
  for (int32_t i : seq.changed) seq.changed_mark[i] = 0;
  for (int32_t i : seq.kept_changed) seq.changed_mark[i] = 0;
  seq.changed.clear();
  seq.kept_changed.clear();
  seq.all_changed = false;
}

void KvCache::ResetSums(Sequence& seq) {
  seq.kept_sum = 0;
  seq.kept_min = std::numeric_limits<int32_t>::max();
  seq.kept_max = 0;
  seq.page_refs = 0;
}

void KvCache::AddToSums(Sequence& seq, const KvStream& s) {
  seq.kept_sum += s.kept;
  seq.kept_min = std::min(seq.kept_min, s.kept);
  seq.kept_max = std::max(seq.kept_max, s.kept);
  seq.page_refs += static_cast<int64_t>(s.kept_pages.size());
}

void KvCache::AddWindowSums(Sequence& seq) {
  seq.page_refs += seq.windows.num_pages() * seq.windows.streams();
}

void KvCache::Summarize(Sequence& seq) {
  ResetSums(seq);
  for (const KvStream& s : seq.streams) AddToSums(seq, s);
  AddWindowSums(seq);
}

std::vector<int64_t> KvCache::DecodePageNeeds(absl::Span<const SeqId> ids, int k) const {
  std::vector<int64_t> needs(std::max(k, 0), 0);
  for (SeqId id : ids) {
    auto it = seqs_.find(id);
    if (it == seqs_.end()) continue;
    if (k <= 2 && it->second.needs_valid) {
      for (int i = 0; i < k; ++i) needs[i] += it->second.decode_needs[i];
      continue;
    }
    const Sequence& seq = it->second;
    const SequenceWindows& w = seq.windows;
    const std::vector<Leaving> leaving = DecodeLeaving(seq.length, rules_, k);
    for (size_t i = 0; i < seq.streams.size(); ++i) {
      AddDecodeKeptNeeds(seq.streams[i], w.FlagsOf(static_cast<int>(i)), w.base, seq.length,
                         leaving.data(), rules_, k, needs.data());
    }
    std::vector<int64_t> window(needs.size(), 0);
    AddDecodeWindowNeeds(w, seq.length, rules_, k, window.data());
    for (size_t i = 0; i < needs.size(); ++i) needs[i] += window[i] * w.streams();
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
  if (rules_.policy.evicts()) out.flag_stride = static_cast<int64_t>(num_layers_) * num_kv_heads_;
  for (SeqId id : batch) {
    Sequence& seq = seqs_.at(id);
    SequenceWindows& w = seq.windows;
    const int32_t window_start = rules_.WindowStart(seq.length);
    for (size_t i = 0; i < seq.streams.size(); ++i) {
      const KvStream& s = seq.streams[i];
      const int c = static_cast<int>(i);
      out.kept_page_start.push_back(static_cast<int32_t>(out.page_table.size()));
      out.page_table.insert(out.page_table.end(), s.kept_pages.begin(), s.kept_pages.end());
      out.kept_count.push_back(s.kept);
      out.window_page_start.push_back(static_cast<int32_t>(out.page_table.size()));
      const ConstPageColumn pages = std::as_const(w.pages).Column(c);
      for (int64_t j = 0; j < w.num_pages(); ++j) out.page_table.push_back(pages[j]);
      out.window_base.push_back(w.base);
      out.window_start.push_back(window_start);
      if (rules_.policy.evicts()) out.flag_columns.push_back(w.flags.Column(c).data);
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
          .window_flags = st.flag_columns.empty() ? nullptr : st.flag_columns.data(),
          .window_flag_stride = st.flag_stride,
          .page_size = pool_.page_size(),
          .head_dim = pool_.head_dim(),
          .window = rules_.policy.window};
}

ConstWindowFlags KvCache::FlagsOf(SeqId id, int stream) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? ConstWindowFlags() : it->second.windows.FlagsOf(stream);
}

int32_t KvCache::MaxKept(SeqId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second.kept_max;
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
  const int64_t streams = static_cast<int64_t>(seq.streams.size());
  const int64_t window = seq.length - rules_.WindowStart(seq.length);  // same in every stream
  st.logical_tokens = seq.length;
  st.decided = seq.decided;
  st.evicted = seq.evicted;
  st.live_min = seq.kept_min + window;
  st.live_max = seq.kept_max + window;
  st.live_sum = seq.kept_sum + streams * window;
  st.page_refs = seq.page_refs;
  st.unshared_pages = UnsharedPages(seq);
  st.live_fraction =
      seq.length > 0 ? static_cast<double>(st.live_sum) / static_cast<double>(streams * seq.length)
                     : 1.0;
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
    const int64_t streams = static_cast<int64_t>(seq.streams.size());
    const int64_t live = seq.kept_sum + streams * (seq.length - rules_.WindowStart(seq.length));
    st.logical_tokens += seq.length;
    st.live_tokens += live;
    decided += seq.decided;
    evicted += seq.evicted;
    if (seq.length == 0) continue;
    fraction_sum += static_cast<double>(live) / static_cast<double>(streams * seq.length);
    ++counted;
  }
  if (counted > 0 && fraction_sum > 0) st.compression_ratio = counted / fraction_sum;
  if (decided > 0) st.eviction_rate = static_cast<double>(evicted) / decided;
  return st;
}

}  // namespace rami::kv
