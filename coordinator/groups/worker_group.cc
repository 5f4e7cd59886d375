// WorkerGroup: load checks, planning capacity, plans out and cache reports in.
#include "coordinator/groups/worker_group.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/worker_types.h"

namespace rami::coordinator {
namespace {

namespace wv1 = worker::v1;

// Takes `value` for rank 0's report, else combines it with what earlier ranks reported.
template <typename Combine>
void Merge(std::map<SeqId, int64_t>& map, SeqId seq, int64_t value, bool first_rank,
           Combine combine) {
  auto [it, fresh] = map.try_emplace(seq, value);
  if (!fresh) it->second = first_rank ? value : combine(it->second, value);
}

int64_t Max(int64_t a, int64_t b) { return std::max(a, b); }
int64_t Min(int64_t a, int64_t b) { return std::min(a, b); }

}  // namespace

bool PermanentLoadError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kNotFound || s.code() == absl::StatusCode::kUnimplemented ||
         s.code() == absl::StatusCode::kDataLoss;
}

WorkerGroup::WorkerGroup(int id, WorkerGroupAddresses addresses)
    : id_(id), addresses_(std::move(addresses)), key_(GroupKey(addresses_)) {}

absl::Status WorkerGroup::OnLoaded(const std::vector<wv1::LoadShardResponse>& responses,
                                   const ModelIdentity& expected, const SchedulerConfig& config,
                                   int64_t epoch) {
  for (size_t r = 0; r < responses.size(); ++r) {
    const wv1::LoadShardResponse& got = responses[r];
    const std::vector<int32_t> eos(got.eos_token_ids().begin(), got.eos_token_ids().end());
    if (got.vocab_size() != expected.vocab_size || eos != expected.eos_token_ids) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rank ", r, " (", r < addresses_.size() ? addresses_[r] : "?",
          ") loaded a model with vocab_size ", got.vocab_size(), " and EOS ids [",
          absl::StrJoin(eos, ","),
          "], but the coordinator's checkpoint (--model_dir) has "
          "vocab_size ",
          expected.vocab_size, " and EOS ids [", absl::StrJoin(expected.eos_token_ids, ","),
          "] in config.json: the coordinator and the workers must see the same checkpoint"));
    }
  }
  const wv1::LoadShardResponse& first = responses.at(0);
  int64_t pages = first.num_pages();
  int32_t heads = first.num_kv_heads();
  for (const wv1::LoadShardResponse& r : responses) {
    pages = std::min(pages, r.num_pages());     // the tightest rank counts
    heads = std::max(heads, r.num_kv_heads());  // the largest shard of heads
  }
  scheduler = std::make_unique<Scheduler>(config);
  capacity_ = Capacity();
  capacity_.num_pages = pages;
  capacity_.free_pages = pages;
  capacity_.page_size = first.page_size();
  capacity_.streams = int64_t{first.num_layers()} * heads;
  capacity_.evicts = first.dms_window() > 0;
  capacity_.window = first.dms_window();
  num_pages = pages;
  bytes_per_token_ = pages > 0 ? first.kv_cache_bytes() / pages / first.page_size() : 0;
  cache_policy = first.cache_policy();
  lease_epoch = epoch;
  owner_.clear();
  decode_need_ahead_.clear();
  in_flight.clear();
  // The measured rate survives a reload: the same ranks on the same hardware. Only the
  // group's first load gets the first steps' budget, so a rank that stops right after a
  // reload is found at the normal deadline, not minutes later (tests/soak/soak.sh found this).
  error = absl::OkStatus();
  permanent_error = false;
  state = GroupState::kServing;
  return absl::OkStatus();
}

void WorkerGroup::OnLost(const absl::Status& why) {
  state = leaving ? GroupState::kGone : GroupState::kFailed;
  error = why;
  owner_.clear();
  decode_need_ahead_.clear();
  in_flight.clear();
}

wv1::StepPlan WorkerGroup::ToWorkerPlan(const StepDecision& d) {
  wv1::StepPlan plan;
  for (SeqId seq : d.frees) {
    plan.add_frees(seq);
    owner_.erase(seq);
    capacity_.decode_need.erase(seq);
    decode_need_ahead_.erase(seq);
    capacity_.unshared_pages.erase(seq);
  }
  for (const PlannedPrefill& p : d.prefills) {
    wv1::PrefillChunk* chunk = plan.add_prefills();
    chunk->set_seq_id(p.seq);
    chunk->mutable_token_ids()->Assign(p.tokens.begin(), p.tokens.end());
    chunk->set_create(p.create);
    chunk->set_sample(p.sample);
    chunk->set_generated_tokens(p.generated_tokens);
    chunk->set_prompt_logprobs(p.prompt_logprobs);
    if (p.create) *chunk->mutable_sampling() = proto::SamplingToProto(p.sampling);
    if (p.copy_of >= 0) chunk->set_copy_of(p.copy_of);
    owner_[p.seq] = p.owner;
  }
  for (const PlannedDecode& decode : d.decodes) plan.add_decodes(decode.seq);
  for (const PlannedFork& f : d.forks) {
    wv1::Fork* fork = plan.add_forks();
    fork->set_parent(f.parent);
    for (const PlannedForkChild& c : f.children) {
      wv1::ForkChild* child = fork->add_children();
      child->set_seq_id(c.seq);
      *child->mutable_sampling() = proto::SamplingToProto(c.sampling);
      owner_[c.seq] = {f.job, c.branch};
    }
  }
  for (const PlannedSnapshot& snapshot : d.snapshots) {
    wv1::Snapshot* out = plan.add_snapshots();
    out->set_source(snapshot.source);
    out->set_seq_id(snapshot.seq);
  }
  // Cache entries belong to no job; their reports still keep the capacity model current.
  for (SeqId seq : d.cached) owner_[seq] = kPrefixCacheOwner;
  return plan;
}

std::map<JobId, KvUsage> WorkerGroup::ApplyCacheReports(
    const std::vector<wv1::StepResult>& results) {
  capacity_.free_pages = results.at(0).cache().free_pages();
  for (const wv1::StepResult& r : results) {
    capacity_.free_pages = std::min(capacity_.free_pages, r.cache().free_pages());
  }
  // The mean α so far, the lowest over ranks (the most conservative projection).
  if (results[0].cache().eviction_rate() > 0) {
    capacity_.eviction_rate = results[0].cache().eviction_rate();
    for (const wv1::StepResult& r : results) {
      capacity_.eviction_rate = std::min(capacity_.eviction_rate, r.cache().eviction_rate());
    }
  }
  std::map<JobId, KvUsage> usage;
  for (size_t i = 0; i < results.size(); ++i) {
    for (const wv1::SequenceCache& s : results[i].cache().sequences()) {
      auto owner = owner_.find(s.seq_id());
      if (owner == owner_.end()) continue;  // freed by a plan sent since
      const int64_t need = s.decode_page_needs_size() > 0 ? s.decode_page_needs(0) : 0;
      const int64_t ahead = s.decode_page_needs_size() > 1 ? s.decode_page_needs(1) : need;
      Merge(capacity_.decode_need, s.seq_id(), need, i == 0, Max);
      Merge(decode_need_ahead_, s.seq_id(), ahead, i == 0, Max);
      Merge(capacity_.unshared_pages, s.seq_id(), s.unshared_pages(), i == 0, Min);
      if (owner->second.job == kPrefixCacheOwner.job) continue;
      // Each rank reports its own streams: live and logical tokens add up over the ranks, so
      // the ratio is the same at any tensor-parallel degree.
      KvUsage& job = usage[owner->second.job];
      job.live_tokens += s.live_tokens_sum();
      job.logical_tokens += s.logical_tokens() * capacity_.streams;
    }
  }
  for (auto& [job, kv] : usage) kv.bytes = kv.live_tokens * bytes_per_token_;
  return usage;
}

absl::Time WorkerGroup::StepDeadline(const StepDeadlines& d) const {
  if (in_flight.empty()) return absl::InfiniteFuture();
  const InFlight& step = in_flight.front();
  if (steps_timed_ < d.warmup_steps) return step.sent + d.first_steps;
  return step.sent + d.floor +
         absl::Seconds(d.factor * seconds_per_token_ *
                       static_cast<double>(std::max<int64_t>(step.tokens, 1)));
}

void WorkerGroup::RecordStepTime(const InFlight& step, absl::Duration took) {
  const double per_token = absl::ToDoubleSeconds(took) / std::max<int64_t>(step.tokens, 1);
  // The slowest recent steps weigh most: a deadline must not be set by a lucky streak.
  seconds_per_token_ = steps_timed_ == 0
                           ? per_token
                           : std::max(per_token, 0.9 * seconds_per_token_ + 0.1 * per_token);
  ++steps_timed_;
}

const BranchRef* WorkerGroup::Owner(SeqId seq) const {
  auto it = owner_.find(seq);
  return it == owner_.end() ? nullptr : &it->second;
}

const char* WorkerGroup::state_name() const {
  if (leaving) return "leaving";
  switch (state) {
    case GroupState::kLoading:
      return "loading";
    case GroupState::kServing:
      return "serving";
    case GroupState::kFailed:
      return "failed";
    case GroupState::kGone:
      return "gone";
  }
  return "gone";
}

}  // namespace rami::coordinator
