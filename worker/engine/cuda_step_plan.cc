// Planning and packing of a CUDA step's metadata; see cuda_step_plan.h.
#include "worker/engine/cuda_step_plan.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace rami::engine {

using kv::DeviceKvTables;
using kv::KvCache;
using kv::KvStream;
using kv::StreamRules;

namespace {

size_t Align16(size_t n) { return (n + 15) / 16 * 16; }

}  // namespace

CudaStepPlan PlanCudaStep(absl::Span<const SequenceChunk> chunks, const KvCache& cache,
                          const DeviceKvTables& tables) {
  CudaStepPlan p;
  const int num_layers = cache.num_layers();
  const int heads = cache.num_kv_heads();
  const StreamRules rules{cache.policy(), cache.pool().page_size()};
  // Plan order: single-token chunks first, then the others, each group in caller order.
  std::vector<size_t> order;
  for (size_t c = 0; c < chunks.size(); ++c) {
    if (chunks[c].tokens.size() == 1) order.push_back(c);
  }
  for (size_t c = 0; c < chunks.size(); ++c) {
    if (chunks[c].tokens.size() != 1) order.push_back(c);
  }
  p.chunk_first.assign(chunks.size(), 0);
  std::vector<int32_t> base_of_token;
  for (size_t c : order) {
    const SequenceChunk& chunk = chunks[c];
    const int32_t base = tables.StreamBase(chunk.seq_id);
    RAMI_CHECK(base >= 0, "sequence %lld is not in the device tables",
               static_cast<long long>(chunk.seq_id));
    const int64_t start = cache.Length(chunk.seq_id);
    const int n = static_cast<int>(chunk.tokens.size());
    p.chunk_first[c] = p.num_tokens;
    if (n == 1) {
      ++p.num_decode;
      // Visible keys of the query at `start`: kept + window positions [window_start, start].
      const int32_t kept = cache.MaxKept(chunk.seq_id);
      p.max_decode_keys =
          std::max<int64_t>(p.max_decode_keys, kept + start + 1 - rules.WindowStart(start + 1));
    } else {
      p.prefill_first.push_back(p.num_tokens);
      p.prefill_length.push_back(n);
    }
    for (int i = 0; i < n; ++i) {
      p.tokens.push_back(chunk.tokens[i]);
      p.positions.push_back(static_cast<int32_t>(start + i));
      base_of_token.push_back(base);
    }
    p.num_tokens += n;
  }
  p.token_stream.resize(static_cast<size_t>(num_layers) * p.num_tokens);
  for (int layer = 0; layer < num_layers; ++layer) {
    for (int t = 0; t < p.num_tokens; ++t) {
      p.token_stream[static_cast<size_t>(layer) * p.num_tokens + t] =
          base_of_token[t] + layer * heads;
    }
  }
  // Logits rows in caller order, as the CPU backend returns them.
  for (size_t c = 0; c < chunks.size(); ++c) {
    const int n = static_cast<int>(chunks[c].tokens.size());
    p.first_row.push_back(static_cast<int32_t>(p.logit_tokens.size()));
    for (int i = 0; i < n; ++i) {
      if (chunks[c].all_logits || i == n - 1) p.logit_tokens.push_back(p.chunk_first[c] + i);
    }
  }
  return p;
}

int DecodeBucket(int num_tokens, int max_batch) {
  if (num_tokens < 1 || num_tokens > max_batch) return 0;
  if (num_tokens <= 2) return num_tokens;
  if (num_tokens <= 4) return 4;
  return std::min((num_tokens + 7) / 8 * 8, max_batch);
}

void PadDecodePlan(int bucket, CudaStepPlan* plan) {
  CudaStepPlan& p = *plan;
  RAMI_CHECK(p.num_decode == p.num_tokens && bucket >= p.num_tokens,
             "PadDecodePlan: %d decode tokens of %d into a bucket of %d", p.num_decode,
             p.num_tokens, bucket);
  const int real = p.num_tokens;
  const size_t layers = real > 0 ? p.token_stream.size() / real : 0;
  std::vector<int32_t> streams(layers * bucket, -1);
  for (size_t layer = 0; layer < layers; ++layer) {
    std::copy_n(p.token_stream.begin() + layer * real, real, streams.begin() + layer * bucket);
  }
  p.token_stream = std::move(streams);
  p.tokens.resize(bucket, 0);
  p.positions.resize(bucket, 0);
  for (int t = real; t < bucket; ++t) p.logit_tokens.push_back(t);
  p.num_tokens = p.num_decode = bucket;
}

CudaStepLayout LayoutOf(const CudaStepPlan& plan) {
  CudaStepLayout l;
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t where = at;
    at = Align16(at + bytes);
    return where;
  };
  l.tokens = take(4 * plan.tokens.size());
  l.positions = take(4 * plan.positions.size());
  l.token_stream = take(4 * plan.token_stream.size());
  l.logit_tokens = take(4 * plan.logit_tokens.size());
  l.bytes = at;
  return l;
}

void PackCudaStep(const CudaStepPlan& plan, const CudaStepLayout& layout, void* dst) {
  char* out = static_cast<char*>(dst);
  auto put = [&](size_t offset, const std::vector<int32_t>& v) {
    if (!v.empty()) std::memcpy(out + offset, v.data(), 4 * v.size());
  };
  put(layout.tokens, plan.tokens);
  put(layout.positions, plan.positions);
  put(layout.token_stream, plan.token_stream);
  put(layout.logit_tokens, plan.logit_tokens);
}

}  // namespace rami::engine
