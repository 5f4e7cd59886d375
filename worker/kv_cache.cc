// Dense-policy bookkeeping of the KV-cache shard.
#include "worker/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace rami {

KvCache::KvCache(const KvPoolConfig& pool_config, int num_layers, int num_kv_heads, int head_dim)
    : num_layers_(num_layers), num_kv_heads_(num_kv_heads), pool_(pool_config, head_dim) {}

absl::Status KvCache::AddSequence(SeqId id) {
  if (Contains(id)) return absl::AlreadyExistsError(absl::StrCat("sequence ", id, " exists"));
  seqs_[id].streams.resize(static_cast<size_t>(num_layers_) * num_kv_heads_);
  return absl::OkStatus();
}

absl::Status KvCache::FreeSequence(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return absl::NotFoundError(absl::StrCat("unknown sequence ", id));
  for (const std::vector<int32_t>& pages : it->second.streams) pool_.Release(pages);
  seqs_.erase(it);
  return absl::OkStatus();
}

int64_t KvCache::Length(SeqId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second.length;
}

int64_t KvCache::PagesPerStream(int64_t tokens) const {
  return (tokens + pool_.page_size() - 1) / pool_.page_size();
}

int64_t KvCache::PagesToAppend(SeqId id, int64_t num_tokens) const {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return 0;
  const Sequence& seq = it->second;
  const int64_t have = static_cast<int64_t>(seq.streams[0].size());
  const int64_t need = PagesPerStream(seq.length + num_tokens);
  return need > have ? (need - have) * static_cast<int64_t>(seq.streams.size()) : 0;
}

absl::Status KvCache::ReserveAppend(absl::Span<const std::pair<SeqId, int64_t>> appends) {
  int64_t total = 0;
  for (const auto& [id, num_tokens] : appends) {
    if (!Contains(id)) return absl::NotFoundError(absl::StrCat("unknown sequence ", id));
    total += PagesToAppend(id, num_tokens);
  }
  if (total > pool_.free_pages()) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache: the step needs ", total, " pages, ",
                                                     pool_.free_pages(), " of ", pool_.num_pages(),
                                                     " are free"));
  }
  for (const auto& [id, num_tokens] : appends) {
    Sequence& seq = seqs_.at(id);
    const int64_t need = PagesPerStream(seq.length + num_tokens);
    for (std::vector<int32_t>& stream : seq.streams) {
      const int64_t missing = need - static_cast<int64_t>(stream.size());
      if (missing <= 0) continue;
      absl::StatusOr<std::vector<int32_t>> pages = pool_.Allocate(static_cast<int>(missing));
      RAMI_CHECK(pages.ok(), "%s", pages.status().ToString().c_str());  // counted above
      stream.insert(stream.end(), pages->begin(), pages->end());
    }
  }
  return absl::OkStatus();
}

void KvCache::CommitAppend(SeqId id, int64_t num_tokens) {
  Sequence& seq = seqs_.at(id);
  RAMI_CHECK(PagesPerStream(seq.length + num_tokens) <= static_cast<int64_t>(seq.streams[0].size()),
             "commit beyond the reserved pages of sequence %lld", static_cast<long long>(id));
  seq.length += num_tokens;
}

StepPageTable KvCache::BuildPageTable(absl::Span<const SeqId> batch) const {
  StepPageTable table;
  table.stream_page_start.reserve(batch.size() * num_layers_ * num_kv_heads_);
  for (SeqId id : batch) {
    for (const std::vector<int32_t>& stream : seqs_.at(id).streams) {
      table.stream_page_start.push_back(static_cast<int32_t>(table.page_table.size()));
      table.page_table.insert(table.page_table.end(), stream.begin(), stream.end());
    }
  }
  return table;
}

}  // namespace rami
