// The kv-capacity benchmark: one sequence per (policy, page size), prefilled in chunks
// through the real cache bookkeeping; decisions are Bernoulli(eviction_rate) per token and
// stream, written where the KV-write kernel would write them.
#include "tools/kv_capacity.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/kv/kv_cache.h"

namespace rami {

using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::CacheStats;
using kv::KvCache;
using kv::SeqId;
using kv::SequenceStats;
using kv::StepStreams;

namespace {

absl::StatusOr<KvCapacityRow> RunOne(const KvCapacityOptions& o, const CachePolicy& policy,
                                     int page_size) {
  const int64_t streams = int64_t{o.num_layers} * o.num_kv_heads;
  const int64_t pages_per_stream = (o.seq_len + page_size - 1) / page_size + 2;
  KvCache cache({.page_size = page_size,
                 .num_pages = static_cast<int>(streams * pages_per_stream),
                 .allocate_storage = false},
                o.num_layers, o.num_kv_heads, o.head_dim, policy);
  RAMI_RETURN_IF_ERROR(cache.AddSequence(0));
  std::mt19937 rng(o.seed);
  std::bernoulli_distribution evict(o.eviction_rate);
  const SeqId id = 0;
  for (int64_t done = 0; done < o.seq_len;) {
    const int64_t count = std::min<int64_t>(o.chunk, o.seq_len - done);
    const std::pair<SeqId, int64_t> append{id, count};
    RAMI_RETURN_IF_ERROR(cache.ReserveAppend({&append, 1}));
    if (policy.kind == CachePolicyKind::kDms) {
      const StepStreams st = cache.BuildStepStreams({&id, 1});
      for (size_t s = 0; s < st.flag_columns.size(); ++s) {
        // α of token p decides position p − 1 (dms.md §3); token 0's α is discarded.
        for (int64_t p = std::max<int64_t>(done, 1); p < done + count; ++p) {
          st.Flag(s, p - 1 - st.window_base[s]) = evict(rng) ? 1 : 0;
        }
      }
    }
    cache.CommitAppend(id, count);
    done += count;
  }
  const SequenceStats seq = cache.SequenceStatsOf(id);
  const CacheStats all = cache.Stats();
  KvCapacityRow row;
  row.policy = policy.ToString();
  row.page_size = page_size;
  row.live_tokens = static_cast<double>(seq.live_sum) / streams;
  const double token_bytes = (o.k_only ? 1.0 : 2.0) * o.head_dim * o.bytes_per_element;
  row.live_bytes = static_cast<double>(seq.live_sum) * token_bytes;
  row.bytes_per_token = row.live_bytes / static_cast<double>(o.seq_len);
  row.pages = all.pages_in_use;
  row.page_bytes = static_cast<double>(row.pages) * page_size * token_bytes;
  row.sequences_fit = static_cast<int64_t>(o.budget_gib * (1ull << 30) / row.page_bytes);
  row.compression_ratio = all.compression_ratio;
  row.eviction_rate = all.eviction_rate;
  return row;
}

}  // namespace

absl::Status KvCapacityOptions::ApplyShape(const std::string& shape) {
  struct Shape {
    const char* name;
    int layers, kv_heads, head_dim;
    bool k_only;
  };
  static constexpr Shape kShapes[] = {{"qwen3-8b", 36, 8, 128, false},
                                      {"deepseek-v3", 61, 1, 512 + 64, true},
                                      {"llama3-405b", 126, 8, 128, false}};
  for (const Shape& s : kShapes) {
    if (shape != s.name) continue;
    num_layers = s.layers;
    num_kv_heads = s.kv_heads;
    head_dim = s.head_dim;
    k_only = s.k_only;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("kv-capacity: --shape: \"", shape,
                                                 "\" (known: qwen3-8b, deepseek-v3, llama3-405b)"));
}

absl::Status KvCapacityOptions::Validate() const {
  if (num_layers < 1 || num_kv_heads < 1 || head_dim < 1 || bytes_per_element < 1) {
    return absl::InvalidArgumentError("kv-capacity: model shape values must be >= 1");
  }
  if (seq_len < 1 || seq_len > (1 << 22)) {
    return absl::InvalidArgumentError("kv-capacity: --seq_len must be in [1, 4194304]");
  }
  if (eviction_rate < 0 || eviction_rate > 1) {
    return absl::InvalidArgumentError("kv-capacity: --eviction_rate must be in [0, 1]");
  }
  if (budget_gib <= 0) return absl::InvalidArgumentError("kv-capacity: --budget_gib must be > 0");
  if (chunk < 1) return absl::InvalidArgumentError("kv-capacity: --chunk must be >= 1");
  for (int p : page_sizes) {
    if (p < 1 || p > 4096) {
      return absl::InvalidArgumentError(
          absl::StrCat("kv-capacity: --page_sizes: ", p, " is outside [1, 4096]"));
    }
    const int64_t pages = int64_t{num_layers} * num_kv_heads * ((seq_len + p - 1) / p + 2);
    if (pages > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat("kv-capacity: ", pages, " pages at page size ",
                                                     p, " exceed the pool's 2^31 limit"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<KvCapacityRow>> RunKvCapacity(const KvCapacityOptions& o) {
  RAMI_RETURN_IF_ERROR(o.Validate());
  const int recent = o.window_recent > 0
                         ? o.window_recent
                         : static_cast<int>(std::max<int64_t>(1, o.seq_len / 8 - o.window_sinks));
  const std::vector<CachePolicy> policies = {CachePolicy::Dense(), CachePolicy::Dms(o.dms_window),
                                             CachePolicy::Window(o.window_sinks, recent)};
  std::vector<KvCapacityRow> rows;
  for (const CachePolicy& policy : policies) {
    RAMI_RETURN_IF_ERROR(policy.Validate());
    for (int page_size : o.page_sizes) {
      RAMI_ASSIGN_OR_RETURN(KvCapacityRow row, RunOne(o, policy, page_size));
      rows.push_back(row);
    }
  }
  return rows;
}

}  // namespace rami
