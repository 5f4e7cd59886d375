// Field-by-field conversions of step plans, results and cache reports.
#include "worker/service/plan_proto.h"

#include "absl/strings/str_cat.h"
#include "proto/worker_types.h"

namespace rami::service {

using engine::CacheReport;
using engine::PlanFork;
using engine::PlanPrefill;
using engine::PromptLogprobs;
using engine::PromptTokenLogprob;
using engine::SequenceError;
using engine::SequenceReport;
using engine::StepOutcome;
using engine::StepPlan;
using engine::StepToken;
using engine::TokenLogprob;

absl::StatusOr<StepPlan> PlanFromProto(const worker::v1::StepPlan& proto) {
  StepPlan plan;
  plan.step_id = proto.step_id();
  plan.frees.assign(proto.frees().begin(), proto.frees().end());
  for (int i = 0; i < proto.prefills_size(); ++i) {
    const worker::v1::PrefillChunk& p = proto.prefills(i);
    // A copy is a new sequence; only a copy may come without tokens (its whole prompt cached).
    if (p.has_copy_of() && !p.create()) {
      return absl::InvalidArgumentError(
          absl::StrCat("step ", proto.step_id(), ": prefills[", i, "].copy_of: ", p.copy_of(),
                       " without create (sequence ", p.seq_id(), " exists: it cannot be a copy)"));
    }
    if (p.token_ids().empty() && !p.has_copy_of()) {
      return absl::InvalidArgumentError(absl::StrCat("step ", proto.step_id(), ": prefills[", i,
                                                     "].token_ids: empty (sequence ", p.seq_id(),
                                                     "; only a copy_of may have none)"));
    }
    PlanPrefill prefill;
    prefill.seq_id = p.seq_id();
    prefill.tokens.assign(p.token_ids().begin(), p.token_ids().end());
    prefill.create = p.create();
    prefill.sample = p.sample();
    prefill.generated_tokens = p.generated_tokens();
    prefill.prompt_logprobs = p.prompt_logprobs();
    if (p.has_sampling()) prefill.sampling = proto::SamplingFromProto(p.sampling());
    if (p.has_copy_of()) prefill.copy_of = p.copy_of();
    plan.prefills.push_back(std::move(prefill));
  }
  plan.decodes.assign(proto.decodes().begin(), proto.decodes().end());
  for (const worker::v1::Fork& f : proto.forks()) {
    PlanFork fork{f.parent(), {}};
    for (const worker::v1::ForkChild& c : f.children()) {
      fork.children.push_back({c.seq_id(), proto::SamplingFromProto(c.sampling())});
    }
    plan.forks.push_back(std::move(fork));
  }
  for (const worker::v1::Snapshot& s : proto.snapshots()) {
    plan.snapshots.push_back({.source = s.source(), .seq_id = s.seq_id()});
  }
  return plan;
}

void CacheToProto(const CacheReport& report, int rank, worker::v1::RankCache* proto) {
  proto->set_rank(rank);
  proto->set_num_pages(report.stats.num_pages);
  proto->set_free_pages(report.stats.free_pages);
  proto->set_pages_in_use(report.stats.pages_in_use);
  proto->set_compression_ratio(report.stats.compression_ratio);
  proto->set_eviction_rate(report.stats.eviction_rate);
  for (int64_t need : report.decode_page_needs) proto->add_decode_page_needs(need);
  for (const SequenceReport& s : report.sequences) {
    worker::v1::SequenceCache* seq = proto->add_sequences();
    seq->set_seq_id(s.seq_id);
    seq->set_logical_tokens(s.stats.logical_tokens);
    seq->set_live_tokens_max(s.stats.live_max);
    seq->set_live_tokens_sum(s.stats.live_sum);
    seq->set_unshared_pages(s.stats.unshared_pages);
    for (int64_t need : s.decode_page_needs) seq->add_decode_page_needs(need);
  }
}

void OutcomeToProto(const StepOutcome& outcome, uint64_t step_id, int rank,
                    worker::v1::StepResult* proto) {
  proto->set_step_id(step_id);
  proto->set_error_code(static_cast<int32_t>(outcome.status.code()));
  proto->set_error_message(std::string(outcome.status.message()));
  for (const StepToken& t : outcome.tokens) {
    worker::v1::SampledToken* token = proto->add_tokens();
    token->set_seq_id(t.seq_id);
    token->set_token_id(t.sample.token_id);
    token->set_logprob(t.sample.logprob);
    token->set_index(t.index);
    for (const TokenLogprob& alt : t.sample.top) {
      worker::v1::TokenLogprob* out = token->add_top();
      out->set_token_id(alt.token_id);
      out->set_logprob(alt.logprob);
    }
  }
  for (const SequenceError& e : outcome.sequence_errors) {
    worker::v1::SequenceError* out = proto->add_sequence_errors();
    out->set_seq_id(e.seq_id);
    out->set_error_code(static_cast<int32_t>(e.status.code()));
    out->set_error_message(std::string(e.status.message()));
  }
  for (const PromptLogprobs& prompt : outcome.prompt_logprobs) {
    worker::v1::PromptLogprobs* out = proto->add_prompt_logprobs();
    out->set_seq_id(prompt.seq_id);
    for (const PromptTokenLogprob& t : prompt.tokens) {
      worker::v1::PromptTokenLogprob* token = out->add_tokens();
      token->set_position(t.position);
      token->set_token_id(t.score.token_id);
      token->set_logprob(t.score.logprob);
      for (const TokenLogprob& alt : t.score.top) {
        worker::v1::TokenLogprob* top = token->add_top();
        top->set_token_id(alt.token_id);
        top->set_logprob(alt.logprob);
      }
    }
  }
  CacheToProto(outcome.cache, rank, proto->mutable_cache());
  proto->mutable_timing()->set_forward_ms(outcome.forward_ms);
  proto->mutable_timing()->set_total_ms(outcome.total_ms);
}

}  // namespace rami::service
