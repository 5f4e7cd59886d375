// StepPlan / StepOutcome: one step of work for a worker rank, as plain C++ (the worker core
// does not depend on protobuf; worker/service converts rami.worker.v1 messages to these).
// Execution order: frees, then copies of snapshots (PlanPrefill::copy_of), then prefills and
// decodes in one forward pass, then snapshots and forks.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "base/sampling_params.h"
#include "worker/engine/sampler.h"
#include "worker/kv/kv_cache.h"

namespace rami::engine {

struct PlanPrefill {
  kv::SeqId seq_id = 0;
  std::vector<int32_t> tokens;
  bool create = false;                     // the first chunk of a new sequence
  bool sample = false;                     // sample a token from the chunk's last logits
  std::optional<SamplingParams> sampling;  // required with create
  int64_t generated_tokens = 0;            // > 0: replayed generated tokens (resume the RNG index)
  // Score the chunk's tokens (StepOutcome::prompt_logprobs) with the sequence's
  // sampling.logprobs top tokens; not with generated_tokens > 0.
  bool prompt_logprobs = false;
  // With create: the sequence starts as a copy of the cached snapshot `copy_of` (pages shared
  // as by a fork, its pending decision and last logits carried); `tokens` may then be empty
  // (the whole prompt was cached: forks of this step sample from the snapshot's logits).
  std::optional<kv::SeqId> copy_of;
};

// A prefix-cache snapshot: a frozen copy of `source` after the forward pass (pages shared as
// by a fork, last logits kept). It never runs; later plans copy it and free it.
struct PlanSnapshot {
  kv::SeqId source = 0;
  kv::SeqId seq_id = 0;
};

struct PlanForkChild {
  kv::SeqId seq_id = 0;
  SamplingParams sampling;
};

struct PlanFork {
  kv::SeqId parent = 0;
  std::vector<PlanForkChild> children;
};

struct StepPlan {
  uint64_t step_id = 0;
  std::vector<kv::SeqId> frees;
  std::vector<PlanPrefill> prefills;
  std::vector<kv::SeqId> decodes;  // input: the sequence's own last sampled token
  std::vector<PlanFork> forks;
  std::vector<PlanSnapshot> snapshots;
};

// A token sampled for a sequence in a step.
struct StepToken {
  kv::SeqId seq_id = 0;
  int64_t index = 0;  // index among the sequence's generated tokens
  SampledToken sample;
};

// A sequence that failed in a step (its logits had no distribution to sample: a NaN or +Inf
// logit, or none finite). It samples nothing more; every later step that plans it reports the
// same error, until the plan frees it.
struct SequenceError {
  kv::SeqId seq_id = 0;
  absl::Status status;  // names the sequence, the token index and the cause
};

// A scored prompt token: its position in the sequence (≥ 1) and its score there.
struct PromptTokenLogprob {
  int64_t position = 0;
  TokenScore score;
};

// The scores of one prefill chunk planned with prompt_logprobs, in position order: every token
// but the sequence's first (position 0), and but the chunk's first when the sequence's previous
// logits are not held (they are after a prefill chunk, not after a decode or a fork).
struct PromptLogprobs {
  kv::SeqId seq_id = 0;
  std::vector<PromptTokenLogprob> tokens;
};

struct SequenceReport {
  kv::SeqId seq_id = 0;
  kv::SequenceStats stats;
  std::vector<int64_t> decode_page_needs;  // its next two decode steps
};

struct CacheReport {
  kv::CacheStats stats;
  std::vector<int64_t> decode_page_needs;  // next two decode steps of this step's sequences
  std::vector<SequenceReport> sequences;
};

struct StepOutcome {
  absl::Status status;
  std::vector<StepToken> tokens;
  std::vector<SequenceError> sequence_errors;   // sequences that failed (no token in `tokens`)
  std::vector<PromptLogprobs> prompt_logprobs;  // one per prefill with prompt_logprobs
  CacheReport cache;
  double forward_ms = 0;
  double total_ms = 0;
};

}  // namespace rami::engine
