// KvTraffic: random KV-cache traffic for the backend tests — each step may add, fork or free a
// sequence, then gives the live ones prefill chunks (first or later ones) or decode tokens and
// reserves them in the cache. The sequences a step touches (added, forked, freed, appended) are
// what a backend must sync into its device tables.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/paged_attention.h"
#include "worker/cpu/step_metadata.h"
#include "worker/engine/forward_backend.h"
#include "worker/kv/kv_cache.h"

namespace rami::testing {

using cpu::StepMetadata;
using engine::SequenceChunk;
using kv::KvCache;
using kv::SeqId;

// One layer's inputs of a step, in the caller's token order (T rows) and in a CUDA plan's order
// (the plan's rows: caller token t at row to_plan[t]; the other rows are padding, NaN with
// α = 1, which must not matter).
struct LayerInputs {
  std::vector<float> k, v, q;       // [T, kv_heads | kv_heads | q_heads, head_dim]
  std::vector<uint8_t> alpha;       // [T, kv_heads]
  std::vector<float> kp, vp, qp;    // the same in plan order, [plan_rows, …]
  std::vector<uint8_t> alpha_plan;  // [plan_rows, kv_heads]
};

// The CPU backend's answer for one layer of a step: KvWriteCpu of `in`'s caller-order K/V (and
// α when `dms`) into `view` over the step's CPU metadata, then PagedAttentionCpu of its queries:
// [T, q_heads, head_dim]. The reference of the KV runtime tests (CPU twin and GPU).
std::vector<float> ReferenceLayer(const kernels::KvStreamsView& view, const StepMetadata& step,
                                  int layer, const LayerInputs& in, bool dms, int kv_heads,
                                  int q_heads, float scale);

// Plan-order attention output [plan rows, row] back in caller order (caller token t at plan row
// to_plan[t]); padding_nonzero counts the values of the plan rows past the real ones that are
// not exactly zero (a padding token must get zero rows).
struct CallerOrder {
  std::vector<float> rows;
  int64_t padding_nonzero = 0;
};
CallerOrder ToCallerOrder(const std::vector<float>& plan_out, const std::vector<int32_t>& to_plan,
                          size_t row);

// The plan row of each caller-order token of `chunks` (CudaStepPlan::chunk_first).
std::vector<int32_t> PlanRows(const std::vector<SequenceChunk>& chunks,
                              const std::vector<int32_t>& chunk_first);

class KvTraffic {
 public:
  explicit KvTraffic(uint32_t seed) : rng_(seed) {}

  // Plans the next step on `cache` and reserves its appends. Empty: no chunk this step (the
  // caller skips it; nothing was reserved).
  absl::StatusOr<std::vector<SequenceChunk>> Next(KvCache& cache);
  // Commits the appends of the chunks Next returned (after the step ran).
  void Commit(KvCache& cache, const std::vector<SequenceChunk>& chunks);
  // The sequences touched since the last call, in order (repeats possible).
  std::vector<SeqId> TakeTouched() { return std::exchange(touched_, {}); }
  // The generator, for the caller's own draws (activations, decisions).
  std::mt19937& rng() { return rng_; }
  int Percent() { return percent_(rng_); }
  // N(0, 1) K, V and queries, α = 1 with probability 0.7, for the tokens of `to_plan`.
  LayerInputs RandomLayerInputs(const std::vector<int32_t>& to_plan, int plan_rows, int kv_heads,
                                int q_heads, int head_dim);

 private:
  std::mt19937 rng_;
  std::uniform_int_distribution<int> percent_{0, 99};
  std::uniform_int_distribution<int> chunk_{2, 12};
  std::normal_distribution<float> normal_;
  std::vector<SeqId> live_, touched_;
  SeqId next_ = 1;
};

}  // namespace rami::testing
