// JobState: creation from a validated request, branch placement records, queries, KV totals.
#include "coordinator/runner/job_state.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace rami::coordinator {

JobState::JobState(JobId id, api::ValidatedRequest request) : request_(std::move(request)) {
  facts_.id = id;
  facts_.priority = request_.priority;
  facts_.arrival = id;
  facts_.prompt = request_.prompt_token_ids;
  facts_.max_tokens = request_.stopping.max_tokens;
  facts_.prompt_logprobs = request_.prompt_logprobs.has_value();
  facts_.prefix_cache = request_.prefix_cache;
  facts_.snapshot_points = request_.snapshot_points;
  facts_.prefix_scope = absl::StrCat("\x1f", request_.cache_salt);
  if (facts_.prompt_logprobs) prompt_logprobs_.resize(facts_.prompt.size());
}

absl::StatusOr<std::unique_ptr<JobState>> JobState::Create(JobId id, api::ValidatedRequest request,
                                                           const tokenizer::Tokenizer* tokenizer) {
  std::unique_ptr<JobState> job(new JobState(id, std::move(request)));
  const api::ValidatedRequest& r = job->request_;
  absl::StatusOr<aggregation::AnswerExtractor> extractor =
      aggregation::AnswerExtractor::Create(r.aggregation.extractor_regex);
  if (!extractor.ok()) return extractor.status();
  job->extractor = std::move(*extractor);
  const api::PruningOptions& pruning = r.aggregation.pruning;
  if (pruning.enabled) {
    job->pruner.emplace(aggregation::PruningParams{pruning.warmup_branches, pruning.window_tokens,
                                                   pruning.percentile});
  }
  // Confidence needs the top-k alternatives even when the client asked for none.
  job->worker_logprobs = std::max(r.logprobs, pruning.confidence_top_k);
  job->facts_.root_sampling = r.sampling;
  job->facts_.root_sampling.logprobs = r.prompt_logprobs.value_or(0);
  for (int i = 0; i < r.n; ++i) {
    Branch b;
    b.index = i;
    b.sampling = r.sampling;
    b.sampling.seed = r.sampling.seed + static_cast<uint64_t>(i);  // wrapping
    b.sampling.logprobs = job->worker_logprobs;
    job->unplaced_.push_back(std::move(b));
    BranchState state;
    state.output = std::make_unique<BranchOutput>(r, tokenizer, pruning.window_tokens);
    job->branches_.push_back(std::move(state));
  }
  return job;
}

void JobState::SetOwner(const std::string& owner) {
  // Length-prefixed, so that no (key, salt) pair can spell another's scope.
  facts_.prefix_scope = absl::StrCat(owner.size(), ":", owner, "\x1f", request_.cache_salt);
}

std::vector<Branch> JobState::TakeUnplaced() { return std::exchange(unplaced_, {}); }

bool JobState::AddToGroup(int group, Branch b) {
  auto [part, fresh] = parts.try_emplace(group, facts_);
  if (std::find(groups_used.begin(), groups_used.end(), group) == groups_used.end()) {
    groups_used.push_back(group);
  }
  // A placed branch starts over on its new group: forked from the root there, its tokens so
  // far (if any) replayed.
  b.seq = -1;
  b.free_pending = false;
  b.replay_pending = false;
  if (b.phase != BranchPhase::kFinished) {
    b.phase = b.tokens.empty() ? BranchPhase::kWaiting : BranchPhase::kPreempted;
  }
  BranchState& state = branches_.at(b.index);
  state.group = group;
  state.slot = static_cast<int>(part->second.branches.size());
  part->second.branches.push_back(std::move(b));
  return fresh;
}

void JobState::AddRootOnly(int group) {
  parts.try_emplace(group, facts_);
  if (std::find(groups_used.begin(), groups_used.end(), group) == groups_used.end()) {
    groups_used.push_back(group);
  }
}

std::vector<Branch> JobState::DropGroup(int group) {
  std::vector<Branch> moving;
  auto part = parts.find(group);
  if (part == parts.end()) return moving;
  for (Branch& b : part->second.branches) {
    branches_.at(b.index).group = -1;
    branches_.at(b.index).slot = -1;
    if (b.phase != BranchPhase::kFinished) moving.push_back(std::move(b));
  }
  parts.erase(part);
  kv_by_group_.erase(group);  // its memory went with it
  RecomputeKvTotals();
  return moving;
}

Branch* JobState::branch(int i) {
  const BranchState& state = branches_.at(i);
  if (state.group < 0) return nullptr;
  Branch& b = parts.at(state.group).branches.at(state.slot);
  RAMI_CHECK(b.index == i, "branch %d recorded at slot %d of group %d holds branch %d", i,
             state.slot, state.group, b.index);
  return &b;
}

int JobState::RunningBranches() const {
  int running = 0;
  for (const auto& [group, part] : parts) running += part.RunningBranches();
  return running;
}

int JobState::FinishedBranches() const {
  int finished = 0;
  for (const BranchState& b : branches_) finished += b.finished() ? 1 : 0;
  return finished;
}

bool JobState::Started() const {
  for (const auto& [group, part] : parts) {
    if (part.phase != JobPhase::kQueued) return true;
  }
  return false;
}

bool JobState::RootsPrefilled() const {
  if (parts.empty()) return false;
  for (const auto& [group, part] : parts) {
    if (!part.root_ready) return false;
  }
  return true;
}

void JobState::RecordPromptLogprobs(const worker::v1::PromptLogprobs& scored) {
  for (const worker::v1::PromptTokenLogprob& t : scored.tokens()) {
    // Only positions of this prompt, each scoring its own token (a report is trusted no
    // further than that).
    if (t.position() < 1 || t.position() >= static_cast<int64_t>(prompt_logprobs_.size()) ||
        t.token_id() != facts_.prompt[t.position()]) {
      continue;
    }
    rami::v1::TokenLogprobs& out = prompt_logprobs_[t.position()].emplace();
    out.set_token_id(t.token_id());
    out.set_logprob(t.logprob());
    for (const worker::v1::TokenLogprob& top : t.top()) {
      rami::v1::TopLogprob* alt = out.add_top();
      alt->set_token_id(top.token_id());
      alt->set_logprob(top.logprob());
    }
  }
}

bool JobState::PromptScored() const {
  for (size_t i = 1; i < prompt_logprobs_.size(); ++i) {
    if (!prompt_logprobs_[i].has_value()) return false;
  }
  return true;
}

std::vector<rami::v1::TokenLogprobs> JobState::PromptLogprobs() const {
  std::vector<rami::v1::TokenLogprobs> out;
  for (size_t i = 1; i < prompt_logprobs_.size(); ++i) {
    if (prompt_logprobs_[i].has_value()) out.push_back(*prompt_logprobs_[i]);
  }
  return out;
}

bool JobState::HoldsSequences() const {
  for (const auto& [group, part] : parts) {
    if (part.root >= 0) return true;
    for (const Branch& b : part.branches) {
      if (b.seq >= 0) return true;
    }
  }
  return false;
}

void JobState::SetGroupKv(int group, const KvUsage& kv) {
  if (!parts.count(group)) return;  // a report from a group the job has left
  kv_by_group_[group] = kv;
  RecomputeKvTotals();
}

void JobState::RecomputeKvTotals() {
  KvUsage total;
  for (const auto& [g, share] : kv_by_group_) {
    total.bytes += share.bytes;
    total.live_tokens += share.live_tokens;
    total.logical_tokens += share.logical_tokens;
  }
  kv_bytes = total.bytes;
  peak_kv_bytes = std::max(peak_kv_bytes, kv_bytes);
  if (total.live_tokens > 0) {
    compression_ratio = static_cast<double>(total.logical_tokens) / total.live_tokens;
  }
}

}  // namespace rami::coordinator
