// WorkerGroup: one tensor-parallel worker group as the coordinator drives it — its life-cycle
// state, what its ranks reported at load (checked against the coordinator's own model), the
// capacity model its scheduler plans against, which job branch owns each of its sequences, and
// the steps in flight. The translation of a scheduler decision into the plan every rank runs,
// and of the ranks' cache reports back into capacity, live here; the group's thread (in the
// runner) does the RPCs. Fields are guarded by the runner's mutex, except `client` (its own
// locking) and `thread`.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "coordinator/groups/worker_discovery.h"
#include "coordinator/groups/worker_group_client.h"
#include "coordinator/scheduler/scheduler.h"
#include "rami/worker/v1/worker.pb.h"

namespace rami::coordinator {

enum class GroupState { kLoading, kServing, kFailed, kGone };

// How long a group may take to answer a step before its silent rank is declared failed: a
// floor plus the group's measured time per token × the step's tokens × a safety factor. The
// first steps after the group's first load (CUDA graph capture, cold caches) get a budget of
// their own; a reload keeps the rate measured before it.
struct StepDeadlines {
  absl::Duration floor = absl::Seconds(10);
  double factor = 20;
  absl::Duration first_steps = absl::Seconds(300);
  int warmup_steps = 4;  // steps after the first load that use first_steps
};

// What the coordinator's own checkpoint says every rank must have loaded: a group whose
// vocabulary or EOS ids differ runs another model than the one the tokenizer speaks for.
struct ModelIdentity {
  int32_t vocab_size = 0;
  std::vector<int32_t> eos_token_ids;  // config.json's eos_token_id, as the workers read it
};

class WorkerGroup {
 public:
  // A step sent to the ranks whose results have not come back.
  struct InFlight {
    int64_t reserved_pages = 0;
    absl::Time sent;
    int64_t tokens = 0;  // prefill tokens, decodes and fork children of the step
  };

  WorkerGroup(int id, WorkerGroupAddresses addresses);

  // A successful LoadShard on every rank (`responses` in rank order): INVALID_ARGUMENT naming
  // the rank when its model differs from `expected`; else the group serves with a fresh
  // scheduler and a capacity model from the tightest rank.
  absl::Status OnLoaded(const std::vector<worker::v1::LoadShardResponse>& responses,
                        const ModelIdentity& expected, const SchedulerConfig& scheduler,
                        int64_t lease_epoch);
  // The group failed (or left, when `leaving`): its sequences and steps in flight are gone.
  void OnLost(const absl::Status& why);

  // The capacity to plan the next step against: the last reports, minus the pages of the
  // steps in flight, with the page needs announced two steps ahead once one is in flight.
  // Lent to `plan` in place (its maps hold a few entries per running branch: a copy per step
  // was most of the planning cost at 256 branches), then restored; returns what `plan` does.
  template <typename Plan>
  auto WithPlanningCapacity(Plan&& plan) {
    int64_t reserved = 0;
    for (const InFlight& f : in_flight) reserved += f.reserved_pages;
    const bool ahead = !in_flight.empty();
    capacity_.free_pages -= reserved;
    if (ahead) std::swap(capacity_.decode_need, decode_need_ahead_);
    auto result = plan(static_cast<const Capacity&>(capacity_));
    if (ahead) std::swap(capacity_.decode_need, decode_need_ahead_);
    capacity_.free_pages += reserved;
    return result;
  }
  // The plan every rank runs for `decision`; records the owners of new sequences and forgets
  // the freed ones.
  worker::v1::StepPlan ToWorkerPlan(const StepDecision& decision);
  // One step's results of every rank: free pages (tightest rank), each sequence's next page
  // needs and unshared pages, the eviction rate. Returns each job's KV on the group.
  std::map<JobId, KvUsage> ApplyCacheReports(const std::vector<worker::v1::StepResult>& results);
  // When the oldest step in flight must have been answered.
  absl::Time StepDeadline(const StepDeadlines& deadlines) const;
  // A step came back after `took`: the group's time per token is updated.
  void RecordStepTime(const InFlight& step, absl::Duration took);

  // The job branch (branch -1: the root) a sequence belongs to; null for one freed since.
  const BranchRef* Owner(SeqId seq) const;

  const char* state_name() const;
  int id() const { return id_; }
  const std::string& key() const { return key_; }
  const WorkerGroupAddresses& addresses() const { return addresses_; }
  const Capacity& capacity() const { return capacity_; }

  GroupState state = GroupState::kLoading;
  bool leaving = false;          // no longer listed by discovery: evacuate and end
  absl::Status error;            // why the last load or step failed
  bool permanent_error = false;  // the last load failed in a way retrying cannot fix
  int64_t lease_epoch = 0;
  std::string cache_policy;              // as loaded
  std::unique_ptr<Scheduler> scheduler;  // new per load: sequence ids restart with the shard
  int64_t num_pages = 0;
  int64_t branches_placed = 0;
  uint64_t steps = 0;
  // Steps sent whose results have not been received (the group's thread only).
  std::deque<InFlight> in_flight;
  std::unique_ptr<WorkerGroupClient> client;
  std::thread thread;

 private:
  int id_;
  WorkerGroupAddresses addresses_;
  std::string key_;  // GroupKey(addresses)
  Capacity capacity_;
  int64_t bytes_per_token_ = 0;   // per (layer, head) stream and token, K and V
  double seconds_per_token_ = 0;  // exponential moving average over the group's steps
  int steps_timed_ = 0;           // steps answered since the group's first load
  std::map<SeqId, BranchRef> owner_;
  // Pages of each sequence's decode step after the next one (for plans sent one ahead).
  std::map<SeqId, int64_t> decode_need_ahead_;
};

// Load errors that a retry cannot fix (a bad model directory, a bad flag, another model).
bool PermanentLoadError(const absl::Status& s);

}  // namespace rami::coordinator
