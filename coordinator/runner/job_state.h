// JobState: one best-of-N job as the runner tracks it — the validated request, the event
// queue its client reads, one BranchState per branch (found by index), the job's parts (the
// scheduler's Job of each worker group it runs on) and its KV accounting. Plain data with
// small queries; the transitions that emit events are in job_outcome.h. Guarded by the
// runner's mutex.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/aggregation/aggregator.h"
#include "coordinator/aggregation/answer_extractor.h"
#include "coordinator/aggregation/early_pruning.h"
#include "coordinator/api/validated_request.h"
#include "coordinator/metrics/metrics.h"
#include "coordinator/runner/branch_output.h"
#include "coordinator/runner/event_queue.h"
#include "coordinator/scheduler/capacity.h"
#include "coordinator/scheduler/job.h"
#include "rami/v1/inference.pb.h"
#include "rami/worker/v1/worker.pb.h"

namespace rami::coordinator {

// What the service holds of a submitted job: its public id, its owner (the API key's name)
// and its events.
struct JobHandle {
  std::string id;
  std::string owner;
  EventQueue events;
};

struct BranchState {
  std::unique_ptr<BranchOutput> output;             // text, log-probs, confidence, stop conditions
  std::optional<aggregation::FinishReason> reason;  // set once, when the branch ends
  std::string answer;                               // extracted when it ends
  // Where its scheduler record lives: parts.at(group).branches[slot]; -1 while it is on no
  // group (its group failed and it is being placed again).
  int group = -1;
  int slot = -1;
  std::optional<absl::Time> last_token;  // when its last token was accepted

  bool finished() const { return reason.has_value(); }
};

class JobState {
 public:
  // A job of `request.n` branches, none placed yet; branch i samples with seed + i (wrapping)
  // and with the log-probs DeepConf needs. `tokenizer` may be null. INVALID_ARGUMENT when the
  // answer regex does not compile.
  static absl::StatusOr<std::unique_ptr<JobState>> Create(JobId id, api::ValidatedRequest request,
                                                          const tokenizer::Tokenizer* tokenizer);

  // The API key's name the job belongs to: its prefix-cache entries are shared only with the
  // same key's jobs of the same cache salt. Before the job is placed.
  void SetOwner(const std::string& owner);
  // The scheduler records of branches not yet on a group (all of them, after Create).
  std::vector<Branch> TakeUnplaced();
  // Puts `b` on `group`'s part (created from the job's facts when the job is new there).
  // Returns true when the part is new.
  bool AddToGroup(int group, Branch b);
  // A part on `group` with no branch (a score-only job: its root only).
  void AddRootOnly(int group);
  // The group failed or left: its part (and its sequences) are gone. Returns its unfinished
  // branches' records, to be placed again.
  std::vector<Branch> DropGroup(int group);

  // Branch i's scheduler record, or null while it is on no group.
  Branch* branch(int i);
  BranchState& state(int i) { return branches_.at(i); }
  const BranchState& state(int i) const { return branches_.at(i); }
  int n() const { return static_cast<int>(branches_.size()); }

  int RunningBranches() const;
  int FinishedBranches() const;
  bool AllBranchesFinished() const { return FinishedBranches() == n(); }
  bool Started() const;         // a part has begun its prefill
  bool HoldsSequences() const;  // a root or branch still holds a worker sequence
  bool score_only() const { return request_.score_only; }
  // Whether every part's root has been planned to its last chunk.
  bool RootsPrefilled() const;

  // Prompt scoring (request.prompt_logprobs): a root chunk's scored tokens, by position (every
  // group's root scores the same prompt; the last report wins). True once positions 1…P−1
  // all have theirs.
  void RecordPromptLogprobs(const worker::v1::PromptLogprobs& scored);
  bool PromptScored() const;
  // Positions 1…P−1 in order, those not scored left out.
  std::vector<rami::v1::TokenLogprobs> PromptLogprobs() const;

  // Records `group`'s share of the job's KV at its last step and recomputes the totals over
  // the groups the job is still on.
  void SetGroupKv(int group, const KvUsage& kv);

  const Job& facts() const { return facts_; }
  const api::ValidatedRequest& request() const { return request_; }

  // Public fields: the runner and job_outcome.h update them under the runner's mutex.
  std::shared_ptr<JobHandle> handle;
  std::map<int, Job> parts;  // group id → the job's part there
  std::optional<aggregation::AnswerExtractor> extractor;
  std::optional<aggregation::EarlyPruner> pruner;
  int worker_logprobs = 0;  // top-n the workers return: max(logprobs, confidence_top_k)
  int relocations = 0;      // times branches had to move off a failed or leaving group
  int relocated_branches = 0;
  std::vector<int> groups_used;  // every group a branch was placed on, in order
  absl::Time submitted;
  std::optional<absl::Time> first_token;
  absl::Time progress_sent = absl::InfinitePast();
  int64_t kv_bytes = 0;  // at the last step, over its groups
  int64_t peak_kv_bytes = 0;
  double compression_ratio = 1.0;       // logical / live tokens over its groups
  bool done = false;                    // its terminal event was sent
  rami::v1::GetJobResponse record;      // with done: what GetJob reports from now on
  metrics::Metrics* metrics = nullptr;  // where its events are counted (may be null)

 private:
  JobState(JobId id, api::ValidatedRequest request);

  Job facts_;  // id, priority, prompt, max_tokens; no branches
  api::ValidatedRequest request_;
  std::vector<BranchState> branches_;
  std::vector<Branch> unplaced_;
  std::map<int, KvUsage> kv_by_group_;
  std::vector<std::optional<rami::v1::TokenLogprobs>> prompt_logprobs_;  // [P], by position

  void RecomputeKvTotals();  // kv_bytes, its peak and the compression over kv_by_group_
};

// The runner's jobs, by id (admission order).
using JobTable = std::map<JobId, std::unique_ptr<JobState>>;

}  // namespace rami::coordinator
