// Plan execution: validate, reserve, agree, forward, sample, fork, report.
#include "worker/engine/engine.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "worker/engine/sampler.h"
#include "worker/engine/token_scores.h"

namespace rami::engine {

using collectives::Collectives;
using kv::KvCache;
using kv::SeqId;

namespace {

absl::Status PlanError(uint64_t step, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("step ", step, ": ", what));
}

double MillisSince(absl::Time start) { return absl::ToDoubleMilliseconds(absl::Now() - start); }

SampleRequest RequestFor(const SamplingParams& s, uint64_t index) {
  return {.row = 0, .index = index, .params = s};
}

absl::Status ValidateSampling(const SamplingParams& s, const std::string& where) {
  absl::Status status = ValidateSamplingParams(s);
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(where, ": ", status.message()));
}

}  // namespace

Engine::Engine(std::unique_ptr<ForwardBackend> model, std::unique_ptr<KvCache> cache,
               std::unique_ptr<Collectives> comm, StepLimits limits)
    : limits_(limits), model_(std::move(model)), cache_(std::move(cache)), comm_(std::move(comm)) {}

absl::Status Engine::Validate(const StepPlan& plan) const {
  const uint64_t step = plan.step_id;
  std::set<SeqId> used;  // every sequence may appear once per plan
  auto claim = [&](SeqId id, const char* where) -> absl::Status {
    if (!used.insert(id).second) {
      return PlanError(step, absl::StrCat(where, ": sequence ", id, " appears twice in the plan"));
    }
    return absl::OkStatus();
  };
  int64_t tokens = static_cast<int64_t>(plan.decodes.size());
  for (const PlanPrefill& p : plan.prefills) tokens += static_cast<int64_t>(p.tokens.size());
  if (tokens > limits_.max_step_tokens) {
    return PlanError(step, absl::StrCat(tokens, " tokens: over the shard's max_step_tokens (",
                                        limits_.max_step_tokens, ")"));
  }
  const size_t sequences = plan.prefills.size() + plan.decodes.size();
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
  for (const PlanPrefill& p : plan.prefills) {
    RAMI_RETURN_IF_ERROR(claim(p.seq_id, "prefills"));
    if (p.create == (seqs_.count(p.seq_id) != 0)) {
      return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id,
                                          p.create ? " already exists" : " is unknown"));
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
    if (p.tokens.empty()) {
      return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id, ": no tokens"));
    }
    for (int32_t token : p.tokens) {
      if (token < 0 || token >= model_->config().vocab_size) {
        return PlanError(step, absl::StrCat("prefills: sequence ", p.seq_id, ": token id ", token,
                                            " outside [0, ", model_->config().vocab_size, ")"));
      }
    }
    with_logits.insert(p.seq_id);
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
    if (!with_logits.count(f.parent) ||
        std::count(plan.frees.begin(), plan.frees.end(), f.parent)) {
      return PlanError(
          step, absl::StrCat("forks: parent ", f.parent, " is missing or has no prefill logits"));
    }
    if (std::count(plan.decodes.begin(), plan.decodes.end(), f.parent)) {
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
  return absl::OkStatus();
}

int64_t Engine::ForkPageBound(const StepPlan& plan) const {
  // Before the forward pass the parent's tails are not known: at most one partial page per
  // list of every (layer, head) stream per child.
  const int64_t per_child = int64_t{2} * cache_->num_layers() * cache_->num_kv_heads();
  int64_t pages = 0;
  for (const PlanFork& f : plan.forks) pages += per_child * static_cast<int64_t>(f.children.size());
  return pages;
}

absl::Status Engine::Agree(const absl::Status& local, uint64_t step_id) {
  if (comm_->world_size() == 1) return local;
  float failed = local.ok() ? 0.0f : 1.0f;
  if (absl::Status s = comm_->AllReduceSum(&failed, 1); !s.ok()) {
    broken_ = true;
    return s;
  }
  if (!local.ok()) return local;
  if (failed > 0) {
    return absl::AbortedError(absl::StrCat("step ", step_id, ": ", static_cast<int>(failed),
                                           " other rank(s) could not run it"));
  }
  return absl::OkStatus();
}

SampledToken Engine::SampleFor(const Sequence& seq, const float* logits) const {
  const int vocab = model_->config().vocab_size;
  const SampleRequest request = RequestFor(seq.sampling, static_cast<uint64_t>(seq.generated));
  absl::StatusOr<std::vector<SampledToken>> sampled =
      Sample({logits, static_cast<size_t>(vocab)}, vocab, {&request, 1});
  RAMI_CHECK(sampled.ok(), "%s", sampled.status().ToString().c_str());  // parameters validated
  return std::move((*sampled)[0]);
}

void Engine::Record(SeqId id, Sequence& seq, SampledToken sampled, uint64_t step_id,
                    StepOutcome& out) {
  if (seq.failed.ok() && !sampled.status.ok()) {
    seq.failed = absl::Status(
        sampled.status.code(),
        absl::StrCat("sequence ", id, ", generated token ", seq.generated, " (step ", step_id,
                     "): ", sampled.status.message(),
                     " (the model computes non-finite values: check its weights and config)"));
  }
  if (!seq.failed.ok()) {
    out.sequence_errors.push_back({id, seq.failed});
    return;
  }
  out.tokens.push_back({id, seq.generated, std::move(sampled)});
  seq.last_token = out.tokens.back().sample.token_id;
  ++seq.generated;
}

StepOutcome Engine::Execute(const StepPlan& plan) {
  const absl::Time start = absl::Now();
  ++steps_;
  std::vector<SequenceChunk> chunks;
  StepOutcome out = RunStep(plan, chunks);
  if (!out.status.ok()) ++failed_steps_;
  out.cache = Report(plan);
  out.total_ms = MillisSince(start);
  return out;
}

StepOutcome Engine::RunStep(const StepPlan& plan, std::vector<SequenceChunk>& chunks) {
  StepOutcome out;
  if (broken_) {
    out.status = absl::FailedPreconditionError(
        "collectives are broken by an earlier failure; reload the shard");
    return out;
  }
  absl::Status local = Validate(plan);
  if (local.ok()) {
    for (SeqId id : plan.frees) {
      RAMI_CHECK(cache_->FreeSequence(id).ok(), "validated free of %lld",
                 static_cast<long long>(id));
      seqs_.erase(id);
    }
    model_->CacheChanged(plan.frees);
  }
  // New sequences exist in the cache from here; removed again if the step fails.
  std::vector<SeqId> created;
  std::vector<int64_t> prefill_start;  // [prefills] the chunk's first position
  std::vector<SeqId> failed_decodes;   // decodes of sequences that failed in an earlier step
  if (local.ok()) {
    for (const PlanPrefill& p : plan.prefills) {
      if (p.create) {
        RAMI_CHECK(cache_->AddSequence(p.seq_id).ok(), "validated create");
        created.push_back(p.seq_id);
      }
      prefill_start.push_back(cache_->Length(p.seq_id));
      // Scored with the top-n of the chunk's sampling parameters, else the sequence's.
      const int top_n =
          p.sampling.has_value() ? p.sampling->logprobs : seqs_.at(p.seq_id).sampling.logprobs;
      chunks.push_back(
          {.seq_id = p.seq_id, .tokens = p.tokens, .score_top_n = p.prompt_logprobs ? top_n : -1});
    }
    // A decode token's next token may be sampled by the backend (where the logits are). A
    // failed sequence has no token to feed: it is left out and reported after the forward.
    for (SeqId id : plan.decodes) {
      const Sequence& seq = seqs_.at(id);
      if (!seq.failed.ok()) {
        failed_decodes.push_back(id);
        continue;
      }
      chunks.push_back({.seq_id = id,
                        .tokens = {seq.last_token},
                        .sample = RequestFor(seq.sampling, static_cast<uint64_t>(seq.generated))});
    }
  }
  bool reserved = false;
  if (local.ok() && !chunks.empty()) {
    local = model_->Reserve(chunks, *cache_);
    reserved = local.ok();
  }
  if (local.ok() && ForkPageBound(plan) > cache_->pool().free_pages()) {
    local = absl::ResourceExhaustedError(absl::StrCat("step ", plan.step_id, ": forks may need ",
                                                      ForkPageBound(plan), " pages, ",
                                                      cache_->pool().free_pages(), " are free"));
  }
  out.status = Agree(local, plan.step_id);
  absl::StatusOr<ForwardResult> forward = ForwardResult{};
  const absl::Time forward_start = absl::Now();
  if (out.status.ok() && !chunks.empty()) {
    forward = model_->RunReserved(chunks, *cache_, *comm_);
    reserved = false;
    if (!forward.ok()) {
      broken_ = true;  // only a collective can fail here
      out.status = forward.status();
    }
  }
  out.forward_ms = MillisSince(forward_start);
  if (!out.status.ok()) {
    if (reserved) {
      for (const SequenceChunk& c : chunks) cache_->AbortAppend(c.seq_id);
    }
    for (SeqId id : created) RAMI_CHECK(cache_->FreeSequence(id).ok(), "rollback of a create");
    model_->CacheChanged(created);
    return out;
  }

  // Sampling: every rank holds the same full logits (or the backend's same samples), so every
  // rank samples the same tokens.
  const int vocab = model_->config().vocab_size;
  for (size_t i = 0; i < chunks.size(); ++i) {
    Sequence& seq = seqs_[chunks[i].seq_id];
    if (i < forward->sampled.size() && forward->sampled[i].has_value()) {
      Record(chunks[i].seq_id, seq, std::move(*forward->sampled[i]), plan.step_id, out);
      continue;
    }
    const float* row = forward->logits.data() + static_cast<size_t>(forward->first_row[i]) * vocab;
    const bool is_prefill = i < plan.prefills.size();
    if (is_prefill) {
      const PlanPrefill& p = plan.prefills[i];
      if (p.sampling.has_value()) seq.sampling = *p.sampling;
      if (p.prompt_logprobs) {
        std::vector<TokenScore> scored;
        if (i < forward->scored.size()) scored = std::move(forward->scored[i]);
        out.prompt_logprobs.push_back(ScorePrompt(p, seq, prefill_start[i], std::move(scored)));
      }
      seq.last_logits.assign(row, row + vocab);
      seq.last_logits_next = prefill_start[i] + static_cast<int64_t>(p.tokens.size());
      if (p.generated_tokens > 0) seq.generated = p.generated_tokens;
      if (!p.sample) continue;
    }
    // A failed sequence is not sampled again; Record reports its error.
    Record(chunks[i].seq_id, seq, seq.failed.ok() ? SampleFor(seq, row) : SampledToken{},
           plan.step_id, out);
  }
  for (SeqId id : failed_decodes) out.sequence_errors.push_back({id, seqs_.at(id).failed});
  for (const PlanFork& f : plan.forks) {
    std::vector<SeqId> children;
    for (const PlanForkChild& c : f.children) children.push_back(c.seq_id);
    RAMI_CHECK(cache_->Fork(f.parent, children).ok(), "fork capacity was checked");
    model_->CacheChanged(children);
    const Sequence& parent = seqs_.at(f.parent);
    for (const PlanForkChild& c : f.children) {
      Sequence& child = seqs_[c.seq_id];
      child.sampling = c.sampling;
      if (!parent.failed.ok()) {  // a failed root's children fail with it
        child.failed = absl::Status(
            parent.failed.code(),
            absl::StrCat("sequence ", c.seq_id, ": forked from failed ", parent.failed.message()));
      }
      Record(c.seq_id, child,
             child.failed.ok() ? SampleFor(child, parent.last_logits.data()) : SampledToken{},
             plan.step_id, out);
    }
  }
  return out;
}

PromptLogprobs Engine::ScorePrompt(const PlanPrefill& p, const Sequence& seq, int64_t start,
                                   std::vector<TokenScore> scored) const {
  PromptLogprobs out{.seq_id = p.seq_id, .tokens = {}};
  const int top_n = seq.sampling.logprobs;
  // The chunk's first token needs the logits of the position before it: held only when the
  // sequence's last prefill chunk ended there (not after a decode, nor in a fork child).
  if (start > 0 && !seq.last_logits.empty() && seq.last_logits_next == start) {
    std::vector<TokenScore> first =
        ScoreLogits(seq.last_logits, model_->config().vocab_size, {&p.tokens[0], 1}, top_n);
    out.tokens.push_back({.position = start, .score = std::move(first[0])});
  }
  RAMI_CHECK(scored.size() == p.tokens.size() - 1, "backend scored %zu of %zu tokens",
             scored.size(), p.tokens.size() - 1);
  for (size_t i = 0; i < scored.size(); ++i) {
    out.tokens.push_back(
        {.position = start + 1 + static_cast<int64_t>(i), .score = std::move(scored[i])});
  }
  return out;
}

CacheReport Engine::Report(const StepPlan& plan) const {
  CacheReport report;
  report.stats = cache_->Stats();
  std::vector<SeqId> touched;
  for (const PlanPrefill& p : plan.prefills) touched.push_back(p.seq_id);
  for (SeqId id : plan.decodes) touched.push_back(id);
  for (const PlanFork& f : plan.forks) {
    for (const PlanForkChild& c : f.children) touched.push_back(c.seq_id);
  }
  std::vector<SeqId> running;
  for (SeqId id : touched) {
    if (!cache_->Contains(id)) continue;  // a failed step's new sequences
    const SeqId one[] = {id};
    report.sequences.push_back({id, cache_->SequenceStatsOf(id), cache_->DecodePageNeeds(one, 2)});
    running.push_back(id);
  }
  report.decode_page_needs = cache_->DecodePageNeeds(running, 2);
  return report;
}

EngineStats Engine::Stats() const { return {cache_->Stats(), steps_, failed_steps_, broken_}; }

}  // namespace rami::engine
