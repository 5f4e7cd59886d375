// Engine: one worker rank's executor. It owns the model shard, the KV-cache shard, the
// collectives and the per-sequence sampling state, and executes StepPlans in lockstep with
// the other ranks of its group. It never decides anything: every choice is in the plan.
//
// A step validates the plan and reserves its pages on every rank before the first
// collective; one all-reduce of a failure flag then makes all ranks fail the step together
// if any rank cannot run it. A failed step leaves every sequence as it was (frees of a
// well-formed plan are applied regardless; copies are removed, snapshots not taken). A sequence
// whose logits have no distribution (NaN/+Inf) fails alone: the step succeeds for the others and
// reports it in StepOutcome::sequence_errors, on every rank alike (the ranks hold the same gathered
// logits).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "worker/collectives/collectives.h"
#include "worker/engine/forward_backend.h"
#include "worker/engine/step_limits.h"
#include "worker/engine/step_plan.h"
#include "worker/kv/kv_cache.h"

namespace rami::engine {

struct EngineStats {
  kv::CacheStats cache;
  uint64_t steps = 0;
  uint64_t failed_steps = 0;
  bool collectives_broken = false;  // a collective failed: the group must be reloaded
};

class Engine {
 public:
  // `model`: the CPU Model or the CUDA backend of this rank's shard.
  Engine(std::unique_ptr<ForwardBackend> model, std::unique_ptr<kv::KvCache> cache,
         std::unique_ptr<collectives::Collectives> comm, StepLimits limits = {});

  const ForwardBackend& model() const { return *model_; }
  const kv::KvCache& cache() const { return *cache_; }

  StepOutcome Execute(const StepPlan& plan);
  EngineStats Stats() const;

 private:
  struct Sequence {
    SamplingParams sampling;
    int64_t generated = 0;           // tokens sampled so far (the RNG stream index)
    int32_t last_token = -1;         // input of its next decode step
    std::vector<float> last_logits;  // logits of its last prefill chunk (fork source)
    int64_t last_logits_next = -1;   // the position last_logits predicts (its length then)
    absl::Status failed;             // not OK: it samples no more (SequenceError)
  };

  absl::Status Validate(const StepPlan& plan) const;  // engine_validate.cc
  // Whether `id` holds the logits of its current length (a prefill chunk was its last step),
  // so that a snapshot or a copy of it can be forked or sampled without a forward pass.
  bool HoldsCurrentLogits(kv::SeqId id) const;
  // Pages the plan may take beyond its forward-pass reservation (forks and snapshots, worst
  // case; the copies are made before the reservation, exactly).
  int64_t ForkPageBound(const StepPlan& plan) const;
  // Frees → copies: creates the plan's new sequences in the cache (PlanPrefill::create; a
  // copy_of forks its snapshot), appending each to *created; stops at the first copy that
  // does not fit in the pool (ResourceExhausted).
  absl::Status CreateSequences(const StepPlan& plan, std::vector<kv::SeqId>* created);
  // The engine state of a new copy or snapshot `id` of `source`: its last logits and failure
  // (renamed to `id`); sampling and the RNG index start afresh.
  Sequence CopyOf(kv::SeqId source, kv::SeqId id, const char* how) const;
  // All ranks learn whether every rank is ready; a rank that is not reports its reason.
  absl::Status Agree(const absl::Status& local, uint64_t step_id);
  SampledToken SampleFor(const Sequence& seq, const float* logits) const;
  // The sequence's next token, sampled here or by the backend, into `out`: its token, or its
  // error when the sample or the sequence failed.
  void Record(kv::SeqId id, Sequence& seq, SampledToken sampled, uint64_t step_id,
              StepOutcome& out);
  StepOutcome RunStep(const StepPlan& plan, std::vector<SequenceChunk>& chunks);
  // The prompt log-probs of prefill `p`, which starts at position `start`, from the sequence's
  // previous logits (its first token) and the backend's `scored` rows (the others); before
  // seq.last_logits moves on to this chunk's.
  PromptLogprobs ScorePrompt(const PlanPrefill& p, const Sequence& seq, int64_t start,
                             std::vector<TokenScore> scored) const;
  CacheReport Report(const StepPlan& plan) const;

  StepLimits limits_;
  std::unique_ptr<ForwardBackend> model_;
  std::unique_ptr<kv::KvCache> cache_;
  std::unique_ptr<collectives::Collectives> comm_;
  std::map<kv::SeqId, Sequence> seqs_;
  uint64_t steps_ = 0;
  uint64_t failed_steps_ = 0;
  bool broken_ = false;
};

}  // namespace rami::engine
