// Plan execution: validate (engine_validate.cc), free, copy, reserve, agree, forward, sample,
// snapshot, fork, report.
#include "worker/engine/engine.h"

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

double MillisSince(absl::Time start) { return absl::ToDoubleMilliseconds(absl::Now() - start); }

SampleRequest RequestFor(const SamplingParams& s, uint64_t index) {
  return {.row = 0, .index = index, .params = s};
}

}  // namespace

Engine::Engine(std::unique_ptr<ForwardBackend> model, std::unique_ptr<KvCache> cache,
               std::unique_ptr<Collectives> comm, StepLimits limits)
    : limits_(limits), model_(std::move(model)), cache_(std::move(cache)), comm_(std::move(comm)) {}

int64_t Engine::ForkPageBound(const StepPlan& plan) const {
  // Before the forward pass the parent's tails are not known: at most one partial page per
  // list of every (layer, head) stream per child (a snapshot is one more child).
  const int64_t per_child = int64_t{2} * cache_->num_layers() * cache_->num_kv_heads();
  int64_t children = static_cast<int64_t>(plan.snapshots.size());
  for (const PlanFork& f : plan.forks) children += static_cast<int64_t>(f.children.size());
  return per_child * children;
}

absl::Status Engine::CreateSequences(const StepPlan& plan, std::vector<SeqId>* created) {
  std::vector<SeqId> copies;
  absl::Status status;
  for (const PlanPrefill& p : plan.prefills) {
    if (!p.create) continue;
    if (!p.copy_of.has_value()) {
      RAMI_CHECK(cache_->AddSequence(p.seq_id).ok(), "validated create");
      created->push_back(p.seq_id);
      continue;
    }
    // A fork of the snapshot before the forward pass: its chunk continues it. Validated, so
    // only the pool can refuse it (all or nothing: nothing allocated then).
    const SeqId one[] = {p.seq_id};
    status = cache_->Fork(*p.copy_of, one);
    if (!status.ok()) {
      status = absl::Status(status.code(),
                            absl::StrCat("step ", plan.step_id, ": copy of sequence ", *p.copy_of,
                                         " as ", p.seq_id, ": ", status.message()));
      break;
    }
    created->push_back(p.seq_id);
    copies.push_back(p.seq_id);
  }
  // Before the reservation, so that a backend with device page tables syncs the copies with
  // this step's forward pass. A backend that replays the pool's slot copies on the device (the
  // tails copied here) replays them even when the step fails and the copies are freed again:
  // they write only those freed pages, and before any later step writes them again.
  model_->CacheChanged(copies);
  return status;
}

Engine::Sequence Engine::CopyOf(SeqId source, SeqId id, const char* how) const {
  const Sequence& from = seqs_.at(source);
  Sequence seq;
  seq.last_logits = from.last_logits;
  seq.last_logits_next = from.last_logits_next;
  if (!from.failed.ok()) {  // a failed sequence's copies fail with it
    seq.failed = absl::Status(from.failed.code(), absl::StrCat("sequence ", id, ": ", how,
                                                               " failed ", from.failed.message()));
  }
  return seq;
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
  // New sequences (copies included) exist in the cache from here; removed again if the step
  // fails. Their engine state is made once the step succeeded.
  std::vector<SeqId> created;
  if (local.ok()) local = CreateSequences(plan, &created);
  std::vector<int64_t> prefill_start;  // [prefills] the chunk's first position
  std::vector<int> chunk_prefill;      // [chunks] its index in plan.prefills; -1: a decode
  std::vector<SeqId> failed_decodes;   // decodes of sequences that failed in an earlier step
  if (local.ok()) {
    for (size_t j = 0; j < plan.prefills.size(); ++j) {
      const PlanPrefill& p = plan.prefills[j];
      prefill_start.push_back(cache_->Length(p.seq_id));
      if (p.tokens.empty()) continue;  // a copy of a whole prompt: nothing to run
      // Scored with the top-n of the chunk's sampling parameters, else the sequence's.
      const int top_n =
          p.sampling.has_value() ? p.sampling->logprobs : seqs_.at(p.seq_id).sampling.logprobs;
      chunks.push_back(
          {.seq_id = p.seq_id, .tokens = p.tokens, .score_top_n = p.prompt_logprobs ? top_n : -1});
      chunk_prefill.push_back(static_cast<int>(j));
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
      chunk_prefill.push_back(-1);
    }
  }
  bool reserved = false;
  if (local.ok() && !chunks.empty()) {
    local = model_->Reserve(chunks, *cache_);
    reserved = local.ok();
  }
  if (local.ok() && ForkPageBound(plan) > cache_->pool().free_pages()) {
    local = absl::ResourceExhaustedError(
        absl::StrCat("step ", plan.step_id, ": forks and snapshots may need ", ForkPageBound(plan),
                     " pages, ", cache_->pool().free_pages(), " are free"));
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

  // The copies take their snapshot's logits (the chunk's first token may be scored from them)
  // and failure, and the chunk's sampling parameters.
  for (const PlanPrefill& p : plan.prefills) {
    if (p.copy_of.has_value()) seqs_[p.seq_id] = CopyOf(*p.copy_of, p.seq_id, "copied from");
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
    if (chunk_prefill[i] >= 0) {
      const size_t j = static_cast<size_t>(chunk_prefill[i]);
      const PlanPrefill& p = plan.prefills[j];
      if (p.sampling.has_value()) seq.sampling = *p.sampling;
      if (p.prompt_logprobs) {
        std::vector<TokenScore> scored;
        if (i < forward->scored.size()) scored = std::move(forward->scored[i]);
        out.prompt_logprobs.push_back(ScorePrompt(p, seq, prefill_start[j], std::move(scored)));
      }
      seq.last_logits.assign(row, row + vocab);
      seq.last_logits_next = prefill_start[j] + static_cast<int64_t>(p.tokens.size());
      if (p.generated_tokens > 0) seq.generated = p.generated_tokens;
      if (!p.sample) continue;
    }
    // A failed sequence is not sampled again; Record reports its error.
    Record(chunks[i].seq_id, seq, seq.failed.ok() ? SampleFor(seq, row) : SampledToken{},
           plan.step_id, out);
  }
  // Copies without tokens (the whole prompt was cached) sample from their snapshot's logits.
  for (const PlanPrefill& p : plan.prefills) {
    if (!p.tokens.empty()) continue;
    Sequence& seq = seqs_.at(p.seq_id);
    seq.sampling = *p.sampling;
    if (p.prompt_logprobs) out.prompt_logprobs.push_back({.seq_id = p.seq_id, .tokens = {}});
    if (p.sample) {
      Record(p.seq_id, seq,
             seq.failed.ok() ? SampleFor(seq, seq.last_logits.data()) : SampledToken{},
             plan.step_id, out);
    }
  }
  for (SeqId id : failed_decodes) out.sequence_errors.push_back({id, seqs_.at(id).failed});
  // Snapshots, then forks: each a fork of a sequence whose logits are final for the step.
  for (const PlanSnapshot& s : plan.snapshots) {
    const SeqId one[] = {s.seq_id};
    RAMI_CHECK(cache_->Fork(s.source, one).ok(), "snapshot capacity was checked");
    model_->CacheChanged(one);
    Sequence snapshot = CopyOf(s.source, s.seq_id, "snapshot of");
    seqs_[s.seq_id] = std::move(snapshot);  // default sampling: it never samples
  }
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
  for (const PlanSnapshot& s : plan.snapshots) touched.push_back(s.seq_id);
  report.decode_page_needs.assign(2, 0);
  for (SeqId id : touched) {
    if (!cache_->Contains(id)) continue;  // a failed step's new sequences
    const SeqId one[] = {id};
    std::vector<int64_t> needs = cache_->DecodePageNeeds(one, 2);
    for (size_t k = 0; k < needs.size(); ++k) report.decode_page_needs[k] += needs[k];
    report.sequences.push_back({id, cache_->SequenceStatsOf(id), std::move(needs)});
  }
  return report;
}

EngineStats Engine::Stats() const { return {cache_->Stats(), steps_, failed_steps_, broken_}; }

}  // namespace rami::engine
