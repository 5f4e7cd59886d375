// Engine::Validate: a plan's checks, all before anything changes (engine.h). Every failure is
// INVALID_ARGUMENT naming the plan's field, the sequence and what is wrong with it.
#include <algorithm>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/engine/engine.h"

namespace rami::engine {

using kv::SeqId;

namespace {

absl::Status PlanError(uint64_t step, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("step ", step, ": ", what));
}

absl::Status ValidateSampling(const SamplingParams& s, const std::string& where) {
  absl::Status status = ValidateSamplingParams(s);
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(where, ": ", status.message()));
}

bool Contains(const std::vector<SeqId>& ids, SeqId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

bool Engine::HoldsCurrentLogits(SeqId id) const {
  auto it = seqs_.find(id);
  return it != seqs_.end() && !it->second.last_logits.empty() &&
         it->second.last_logits_next == cache_->Length(id);
}

absl::Status Engine::Validate(const StepPlan& plan) const {
  const uint64_t step = plan.step_id;
  std::set<SeqId> used;  // every sequence may appear once per plan
  auto claim = [&](SeqId id, const char* where) -> absl::Status {
    if (!used.insert(id).second) {
      return PlanError(step, absl::StrCat(where, ": sequence ", id, " appears twice in the plan"));
    }
    return absl::OkStatus();
  };
  // The forward pass: every decode and every prefill with tokens (a copy without tokens runs
  // nothing).
  int64_t tokens = static_cast<int64_t>(plan.decodes.size());
  size_t sequences = plan.decodes.size();
  for (const PlanPrefill& p : plan.prefills) {
    tokens += static_cast<int64_t>(p.tokens.size());
    if (!p.tokens.empty()) ++sequences;
  }
  if (tokens > limits_.max_step_tokens) {
    return PlanError(step, absl::StrCat(tokens, " tokens: over the shard's max_step_tokens (",
                                        limits_.max_step_tokens, ")"));
  }
  if (sequences > static_cast<size_t>(limits_.max_step_sequences)) {
    return PlanError(step,
                     absl::StrCat(sequences, " sequences: over the shard's max_step_sequences (",
                                  limits_.max_step_sequences, ")"));
  }
  for (SeqId id : plan.frees) {
    RAMI_RETURN_IF_ERROR(claim(id, "frees"));
    if (!seqs_.count(id)) return PlanError(step, absl::StrCat("frees: unknown sequence ", id));
  }
  std::set<SeqId> with_logits;  // sequences that will hold prefill logits after the forward
  for (const auto& [id, seq] : seqs_) {
    if (!seq.last_logits.empty()) with_logits.insert(id);
  }
  // Sources of snapshots and of sampling without a forward pass: their logits must be those of
  // their length after the forward (a prefill chunk in this step, or as their last step).
  std::set<SeqId> current_logits;
  for (const PlanPrefill& p : plan.prefills) {
    RAMI_RETURN_IF_ERROR(claim(p.seq_id, "prefills"));
    if (p.create == (seqs_.count(p.seq_id) != 0)) {
      return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id,
                                          p.create ? " already exists" : " is unknown"));
    }
    if (p.copy_of.has_value()) {
      const SeqId source = *p.copy_of;
      if (!p.create) {
        return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id, ": copy_of ", source,
                                            " without create (a copy is a new sequence)"));
      }
      if (!seqs_.count(source)) {
        return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id,
                                            ": copy_of unknown sequence ", source));
      }
      if (Contains(plan.frees, source)) {
        return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id, ": copy_of ", source,
                                            ", which this plan frees"));
      }
    }
    if (p.create && !p.sampling.has_value()) {
      return PlanError(
          step, absl::StrCat("prefills: new sequence ", p.seq_id, " needs sampling parameters"));
    }
    if (p.sampling.has_value()) {
      RAMI_RETURN_IF_ERROR(ValidateSampling(*p.sampling, absl::StrCat("prefills[", p.seq_id, "]")));
    }
    if (p.generated_tokens < 0 || (p.create && p.generated_tokens > 0)) {
      return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id,
                                          ": generated_tokens must be >= 0 (0 when creating)"));
    }
    if (p.prompt_logprobs && p.generated_tokens > 0) {
      return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id,
                                          ": prompt_logprobs with generated_tokens > 0 (a replay "
                                          "of generated tokens is not a prompt to score)"));
    }
    if (p.tokens.empty() && !p.copy_of.has_value()) {
      return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id,
                                          ": no tokens (only a copy_of may have none)"));
    }
    for (int32_t token : p.tokens) {
      if (token < 0 || token >= model_->config().vocab_size) {
        return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id, ": token id ", token,
                                            " outside [0, ", model_->config().vocab_size, ")"));
      }
    }
    if (!p.tokens.empty() || HoldsCurrentLogits(*p.copy_of)) {
      with_logits.insert(p.seq_id);
      current_logits.insert(p.seq_id);
    } else if (p.sample) {  // a copy without tokens samples from its source's logits
      return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id,
                                          ": sample without tokens, and copy_of ", *p.copy_of,
                                          " holds no prefill logits of its length"));
    }
  }
  for (SeqId id : plan.decodes) {
    RAMI_RETURN_IF_ERROR(claim(id, "decodes"));
    auto it = seqs_.find(id);
    if (it == seqs_.end()) return PlanError(step, absl::StrCat("decodes: unknown sequence ", id));
    if (it->second.last_token < 0 && it->second.failed.ok()) {
      return PlanError(step, absl::StrCat("decodes: sequence ", id, " has no sampled token yet"));
    }
  }
  for (const PlanFork& f : plan.forks) {
    if (!with_logits.count(f.parent) || Contains(plan.frees, f.parent)) {
      return PlanError(
          step, absl::StrCat("forks: parent ", f.parent, " is missing or has no prefill logits"));
    }
    if (Contains(plan.decodes, f.parent)) {
      return PlanError(step, absl::StrCat("forks: parent ", f.parent,
                                          " also decodes in this step (a root stays frozen)"));
    }
    if (f.children.empty()) return PlanError(step, "forks: no children");
    for (const PlanForkChild& c : f.children) {
      RAMI_RETURN_IF_ERROR(claim(c.seq_id, "forks"));
      if (seqs_.count(c.seq_id)) {
        return PlanError(step, absl::StrCat("forks: child ", c.seq_id, " already exists"));
      }
      RAMI_RETURN_IF_ERROR(ValidateSampling(c.sampling, absl::StrCat("forks[", c.seq_id, "]")));
    }
  }
  for (const PlanSnapshot& s : plan.snapshots) {
    RAMI_RETURN_IF_ERROR(claim(s.seq_id, "snapshots"));
    if (seqs_.count(s.seq_id)) {
      return PlanError(step, absl::StrCat("snapshots: sequence ", s.seq_id, " already exists"));
    }
    if (Contains(plan.frees, s.source)) {
      return PlanError(step, absl::StrCat("snapshots: source ", s.source, " of snapshot ", s.seq_id,
                                          " is freed in this plan"));
    }
    if (Contains(plan.decodes, s.source)) {
      return PlanError(step, absl::StrCat("snapshots: source ", s.source, " of snapshot ", s.seq_id,
                                          " decodes in this step (a snapshot holds the "
                                          "logits of a prefill)"));
    }
    if (!current_logits.count(s.source) && !HoldsCurrentLogits(s.source)) {
      return PlanError(step, absl::StrCat("snapshots: source ", s.source, " of snapshot ", s.seq_id,
                                          " is missing or holds no prefill logits of its length"));
    }
  }
  // A copied sequence is read before the forward pass and must stay as it was: nothing else
  // in the plan may touch it (its other copies aside).
  for (const PlanPrefill& p : plan.prefills) {
    if (!p.copy_of.has_value()) continue;
    const SeqId source = *p.copy_of;
    bool elsewhere = used.count(source) != 0;
    for (const PlanFork& f : plan.forks) elsewhere = elsewhere || f.parent == source;
    for (const PlanSnapshot& s : plan.snapshots) elsewhere = elsewhere || s.source == source;
    if (elsewhere) {
      return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id, ": copy_of ", source,
                                          ", which also appears elsewhere in the plan (a copied "
                                          "sequence stays unchanged in its step)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace rami::engine
