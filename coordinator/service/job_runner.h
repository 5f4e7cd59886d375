// JobRunner: drives the worker groups. A job's branches are placed on groups by free
// capacity when it is submitted (a job may span groups: each group prefills the prompt once
// and forks its share of the branches). Each group has a thread that loads it, then loops:
// schedule a step over the job parts on the group (Scheduler), send the plan to every rank,
// apply the results — tokens to branches, stop conditions, DeepConf pruning, frees,
// aggregation — and push each job's events to its queue. A group that fails or leaves has
// its unfinished branches re-run on the other groups from prompt + tokens so far (or their
// jobs fail with a retryable error when no group is left); a maintenance thread follows the
// discovery source and renews the workers' leases. Submit/Abort/Get are safe from any thread.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/aggregation/aggregator.h"
#include "coordinator/api/model_front_end.h"
#include "coordinator/api/validated_request.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/service/event_queue.h"
#include "coordinator/service/worker_discovery.h"
#include "coordinator/service/worker_group_client.h"
#include "rami/v1/inference.pb.h"

namespace rami::coordinator {

struct RunnerConfig {
  SchedulerConfig scheduler;
  bool lookahead = false;  // send step t+1 before step t's results arrive
  int queue_limit = 1024;  // jobs waiting or running
  // How every group is loaded; group_id, lease epoch and holder are filled per load.
  GroupLoadOptions load;
  std::string coordinator_id = "rami-coordinator";  // the lease holder
  absl::Duration discovery_interval = absl::Seconds(5);
  absl::Duration reload_backoff = absl::Seconds(2);  // after a failed load or a failed group
  // A job whose branches had to move this many times fails (retryable) instead of moving
  // again: a job that breaks every group it runs on must not take the cluster down.
  int max_relocations = 3;
};

struct GroupStats {
  std::string ranks;
  std::string state;
  std::string error;
  int64_t num_pages = 0;
  int64_t free_pages = 0;
  int64_t branches_placed = 0;
  uint64_t steps = 0;
};

struct RunnerStats {
  uint64_t steps = 0;
  int jobs_active = 0;
  int branches_running = 0;
  int max_branches_running = 0;  // most branches decoding in one step of one group
  // Concurrency at the memory limit: branches decoded in steps where pages (not work) were
  // the limit, and the number of such steps.
  int64_t decode_tokens = 0;
  int64_t decode_steps = 0;
  int64_t preemptions = 0;
  int64_t relocated_branches = 0;  // moved off a failed or leaving group
  double step_ms_total = 0;        // wall time of the workers' steps (plan → results)
  double schedule_ms_total = 0;    // time spent planning and applying results
  int64_t free_pages = 0;          // summed over serving groups
  int groups_known = 0;
  int groups_serving = 0;
  std::vector<GroupStats> groups;
};

struct JobHandle {
  std::string id;
  EventQueue events;
};

class JobRunner {
 public:
  // Starts loading the groups `discovery` lists. `model` outlives the runner.
  JobRunner(const RunnerConfig& config, std::unique_ptr<WorkerDiscovery> discovery,
            const api::ModelFrontEnd* model);
  ~JobRunner();

  // Blocks until a group serves (OK), `timeout` passes (DEADLINE_EXCEEDED with the last load
  // error) or, for a fixed list, every group's load failed permanently (that error).
  absl::Status WaitUntilServing(absl::Duration timeout);
  // Queues a validated job; RESOURCE_EXHAUSTED when the queue limit is reached, UNAVAILABLE
  // when no group serves.
  absl::StatusOr<std::shared_ptr<JobHandle>> Submit(api::ValidatedRequest request);
  // From now on Submit refuses new jobs (UNAVAILABLE); running jobs go on.
  void StartDrain();
  // Idempotent: aborting an unknown or finished job succeeds.
  void Abort(const std::string& job_id, std::optional<int> branch);
  std::optional<rami::v1::GetJobResponse> Get(const std::string& job_id);
  RunnerStats Stats();
  bool healthy();  // at least one group serves
  // The cache policy the serving groups report ("" before any group has loaded).
  std::string cache_policy();

 private:
  struct RunnerJob;
  struct Group;
  enum class GroupState { kLoading, kServing, kFailed, kGone };

  void GroupLoop(Group* g);
  absl::Status LoadGroup(Group& g);
  void Maintain();
  void Refresh() ABSL_LOCKS_EXCLUDED(mu_);
  // One step of `g`; returns false when there was nothing to do.
  bool StepOnce(Group& g);
  worker::v1::StepPlan ToPlan(Group& g, const StepDecision& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(Group& g, const std::vector<worker::v1::StepResult>& results)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnToken(RunnerJob& job, Branch& b, const worker::v1::SampledToken& token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishBranch(RunnerJob& job, int branch, aggregation::FinishReason reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishJob(RunnerJob& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendProgress(RunnerJob& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailJob(RunnerJob& job, const absl::Status& status, bool retryable)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No step could be planned on `g` and none is in flight: unblock or drop finished jobs.
  void HandleIdle(Group& g, const std::vector<Job*>& active) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `g` failed or left: its job parts are gone; their unfinished branches move to serving
  // groups, or their jobs fail (retryable).
  void Evacuate(Group& g, const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Places `branches` (unfinished, not on any group) of `job` on serving groups; false when
  // no group serves.
  bool Place(RunnerJob& job, std::vector<Branch> branches) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pages `g` can still promise: free pages minus the projection of work placed but not
  // started.
  int64_t Headroom(const Group& g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops jobs that are done and hold no worker sequence.
  void Reap() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  RunnerConfig config_;
  std::unique_ptr<WorkerDiscovery> discovery_;  // maintenance thread only
  const api::ModelFrontEnd* model_;

  absl::Mutex mu_;
  absl::CondVar work_;
  std::map<int, std::unique_ptr<Group>> groups_ ABSL_GUARDED_BY(mu_);
  int next_group_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<JobId, std::unique_ptr<RunnerJob>> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, JobId> by_name_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, rami::v1::GetJobResponse> finished_ ABSL_GUARDED_BY(mu_);
  RunnerStats stats_ ABSL_GUARDED_BY(mu_);
  JobId next_job_ ABSL_GUARDED_BY(mu_) = 1;
  std::string cache_policy_ ABSL_GUARDED_BY(mu_);
  absl::Status last_load_error_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread maintenance_;
};

}  // namespace rami::coordinator
