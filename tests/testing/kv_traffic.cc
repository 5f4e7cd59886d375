// Random KV-cache traffic.
#include "tests/testing/kv_traffic.h"

#include <algorithm>
#include <cmath>

#include "base/status_macros.h"

namespace rami::testing {

using cpu::StepMetadata;
using engine::SequenceChunk;
using kv::KvCache;
using kv::SeqId;

absl::StatusOr<std::vector<SequenceChunk>> KvTraffic::Next(KvCache& cache) {
  if (live_.size() < 3 || Percent() < 8) {
    RAMI_RETURN_IF_ERROR(cache.AddSequence(next_));
    live_.push_back(next_);
    touched_.push_back(next_++);
  } else if (Percent() < 15) {  // fork a sequence that has tokens
    const SeqId parent = live_[Percent() % live_.size()];
    if (cache.Length(parent) > 0) {
      RAMI_RETURN_IF_ERROR(cache.Fork(parent, {next_}));
      live_.push_back(next_);
      touched_.push_back(next_++);
    }
  } else if (Percent() < 10 && live_.size() > 3) {
    const size_t i = Percent() % live_.size();
    RAMI_RETURN_IF_ERROR(cache.FreeSequence(live_[i]));
    touched_.push_back(live_[i]);
    live_.erase(live_.begin() + static_cast<int64_t>(i));
  }
  // Some sequences sit the step out; new ones prefill, some others get a later chunk (prefill
  // after decode), the rest decode one token.
  std::vector<SequenceChunk> chunks;
  for (SeqId id : live_) {
    const int r = Percent();
    if (r < 15 && cache.Length(id) > 0) continue;
    const int n = cache.Length(id) == 0 || r < 27 ? chunk_(rng_) : 1;
    chunks.push_back({.seq_id = id, .tokens = std::vector<int32_t>(n, 0)});
  }
  if (chunks.empty()) return chunks;
  std::vector<std::pair<SeqId, int64_t>> appends;
  for (const SequenceChunk& c : chunks) {
    appends.emplace_back(c.seq_id, static_cast<int64_t>(c.tokens.size()));
    touched_.push_back(c.seq_id);
  }
  RAMI_RETURN_IF_ERROR(cache.ReserveAppend(appends));
  return chunks;
}

std::vector<float> ReferenceLayer(const kernels::KvStreamsView& view, const StepMetadata& step,
                                  int layer, const LayerInputs& in, bool dms, int kv_heads,
                                  int q_heads, float scale) {
  std::vector<float> out(in.q.size());
  kernels::KvWriteCpu({.cache = view,
                       .k = in.k.data(),
                       .v = in.v.data(),
                       .alpha = dms ? in.alpha.data() : nullptr,
                       .token_stream = step.token_stream[layer].data(),
                       .positions = step.positions.data(),
                       .num_tokens = step.num_tokens,
                       .num_kv_heads = kv_heads});
  kernels::PagedAttentionCpu({.cache = view,
                              .q = in.q.data(),
                              .out = out.data(),
                              .token_stream = step.token_stream[layer].data(),
                              .positions = step.positions.data(),
                              .num_tokens = step.num_tokens,
                              .num_q_heads = q_heads,
                              .num_kv_heads = kv_heads,
                              .scale = scale});
  return out;
}

CallerOrder ToCallerOrder(const std::vector<float>& plan_out, const std::vector<int32_t>& to_plan,
                          size_t row) {
  CallerOrder r;
  r.rows.resize(to_plan.size() * row);
  for (size_t t = 0; t < to_plan.size(); ++t) {
    std::copy_n(&plan_out[static_cast<size_t>(to_plan[t]) * row], row, &r.rows[t * row]);
  }
  for (size_t i = to_plan.size() * row; i < plan_out.size(); ++i) {
    r.padding_nonzero += plan_out[i] != 0.0f;
  }
  return r;
}

std::vector<int32_t> PlanRows(const std::vector<SequenceChunk>& chunks,
                              const std::vector<int32_t>& chunk_first) {
  std::vector<int32_t> rows;
  for (size_t c = 0; c < chunks.size(); ++c) {
    for (size_t i = 0; i < chunks[c].tokens.size(); ++i) {
      rows.push_back(chunk_first[c] + static_cast<int32_t>(i));
    }
  }
  return rows;
}

LayerInputs KvTraffic::RandomLayerInputs(const std::vector<int32_t>& to_plan, int plan_rows,
                                         int kv_heads, int q_heads, int head_dim) {
  const size_t t = to_plan.size(), kv = static_cast<size_t>(kv_heads) * head_dim,
               qw = static_cast<size_t>(q_heads) * head_dim, p = static_cast<size_t>(plan_rows);
  LayerInputs in;
  in.k.resize(t * kv);
  in.v.resize(t * kv);
  in.q.resize(t * qw);
  in.alpha.resize(t * kv_heads);
  for (float& x : in.k) x = normal_(rng_);
  for (float& x : in.v) x = normal_(rng_);
  for (float& x : in.q) x = normal_(rng_);
  for (uint8_t& a : in.alpha) a = Percent() < 70 ? 1 : 0;
  in.kp.assign(p * kv, std::nanf(""));
  in.vp.assign(p * kv, std::nanf(""));
  in.qp.assign(p * qw, std::nanf(""));
  in.alpha_plan.assign(p * kv_heads, 1);
  for (size_t i = 0; i < t; ++i) {
    const size_t g = static_cast<size_t>(to_plan[i]);
    std::copy_n(&in.k[i * kv], kv, &in.kp[g * kv]);
    std::copy_n(&in.v[i * kv], kv, &in.vp[g * kv]);
    std::copy_n(&in.q[i * qw], qw, &in.qp[g * qw]);
    std::copy_n(&in.alpha[i * kv_heads], kv_heads, &in.alpha_plan[g * kv_heads]);
  }
  return in;
}

void KvTraffic::Commit(KvCache& cache, const std::vector<SequenceChunk>& chunks) {
  for (const SequenceChunk& c : chunks) {
    cache.CommitAppend(c.seq_id, static_cast<int64_t>(c.tokens.size()));
    touched_.push_back(c.seq_id);
  }
}

}  // namespace rami::testing
