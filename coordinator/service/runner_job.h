// JobRunner::RunnerJob: a job as the runner tracks it — its parts (the scheduler's Job of
// each group it runs on), the request, the event queue, each branch's output and the
// aggregation state; and JobRunner::Group, a worker group as the runner drives it. Internal
// to job_runner*.cc.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "coordinator/aggregation/answer_extractor.h"
#include "coordinator/aggregation/early_pruning.h"
#include "coordinator/service/branch_output.h"
#include "coordinator/service/job_runner.h"

namespace rami::coordinator {

struct JobRunner::RunnerJob {
  Job job;  // the job's facts (id, priority, prompt, max_tokens); its branches live in parts
  // Group id → the part of the job on that group: the branches placed there and the root
  // they fork from (each group prefills the prompt once).
  std::map<int, Job> parts;
  int n = 0;            // branches
  int relocations = 0;  // times branches had to move off a failed or leaving group
  int relocated_branches = 0;
  api::ValidatedRequest request;
  std::shared_ptr<JobHandle> handle;
  std::vector<std::unique_ptr<BranchOutput>> outputs;
  std::vector<std::optional<aggregation::FinishReason>> reasons;
  std::vector<std::string> answers;
  std::optional<aggregation::AnswerExtractor> extractor;
  std::optional<aggregation::EarlyPruner> pruner;
  int worker_logprobs = 0;
  absl::Time submitted;
  std::optional<absl::Time> first_token;
  int64_t peak_kv_bytes = 0;
  int64_t kv_bytes = 0;  // at the last step, over its groups
  std::map<int, int64_t> kv_bytes_by_group;
  std::map<int, std::pair<int64_t, int64_t>> live_by_group;  // (live, logical) tokens
  std::set<int> groups_used;  // every group a branch of the job was placed on
  absl::Time progress_sent = absl::InfinitePast();
  double compression_ratio = 1.0;
  bool done = false;  // its terminal event was sent

  Branch* FindBranch(int index) {
    for (auto& [group, part] : parts) {
      for (Branch& b : part.branches) {
        if (b.index == index) return &b;
      }
    }
    return nullptr;
  }
  bool AllBranchesFinished() const {
    for (const std::optional<aggregation::FinishReason>& r : reasons) {
      if (!r.has_value()) return false;
    }
    return true;
  }
  int RunningBranches() const {
    int running = 0;
    for (const auto& [group, part] : parts) running += part.RunningBranches();
    return running;
  }
  int FinishedBranches() const {
    int finished = 0;
    for (const std::optional<aggregation::FinishReason>& r : reasons) finished += r.has_value();
    return finished;
  }
  bool HoldsSequences() const {
    for (const auto& [group, part] : parts) {
      if (part.root >= 0) return true;
      for (const Branch& b : part.branches) {
        if (b.seq >= 0) return true;
      }
    }
    return false;
  }
};

struct JobRunner::Group {
  int id = 0;
  WorkerGroupAddresses addresses;
  std::string key;  // GroupKey(addresses)
  // Guarded by the runner's mu_:
  GroupState state = GroupState::kLoading;
  bool leaving = false;          // no longer listed by discovery: evacuate and end
  absl::Status error;            // why the last load or step failed
  bool permanent_error = false;  // the last load failed in a way retrying cannot fix
  int64_t lease_epoch = 0;
  std::unique_ptr<Scheduler> scheduler;  // new per load: sequence ids restart with the shard
  Capacity capacity;
  int64_t num_pages = 0;
  int64_t branches_placed = 0;
  uint64_t steps = 0;
  int64_t bytes_per_token = 0;  // per (layer, head) stream and token, K and V
  std::map<SeqId, BranchRef> owner;
  // Pages of each sequence's decode step after the next one (for plans sent one ahead).
  std::map<SeqId, int64_t> decode_need_ahead;
  // Steps sent whose results have not been received (the group's thread only).
  struct InFlight {
    int64_t reserved_pages = 0;
    absl::Time sent;
  };
  std::deque<InFlight> in_flight;
  // The group's thread owns the client's Step streams; Cancel and RenewLease are
  // thread-safe.
  std::unique_ptr<WorkerGroupClient> client;
  std::thread thread;
};

// Conversions between the aggregation library's enums and the public API's.
inline rami::v1::FinishReason ToProto(aggregation::FinishReason r) {
  switch (r) {
    case aggregation::FinishReason::kEos:
      return rami::v1::EOS;
    case aggregation::FinishReason::kStopString:
      return rami::v1::STOP_STRING;
    case aggregation::FinishReason::kStopToken:
      return rami::v1::STOP_TOKEN;
    case aggregation::FinishReason::kMaxTokens:
      return rami::v1::MAX_TOKENS;
    case aggregation::FinishReason::kAborted:
      return rami::v1::ABORTED;
    case aggregation::FinishReason::kPruned:
      return rami::v1::PRUNED;
  }
  return rami::v1::FINISH_REASON_UNSPECIFIED;
}

inline aggregation::AggregationPolicy ToAggregation(api::AggregationPolicy p) {
  switch (p) {
    case api::AggregationPolicy::kNone:
      return aggregation::AggregationPolicy::kNone;
    case api::AggregationPolicy::kMajorityVote:
      return aggregation::AggregationPolicy::kMajorityVote;
    case api::AggregationPolicy::kWeightedVote:
      return aggregation::AggregationPolicy::kWeightedVote;
    case api::AggregationPolicy::kBestLogprob:
      return aggregation::AggregationPolicy::kBestLogprob;
  }
  return aggregation::AggregationPolicy::kNone;
}

}  // namespace rami::coordinator
