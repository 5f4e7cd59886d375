// JobRunner: the coordinator's engine room. It owns the jobs (JobState) and the worker groups
// (WorkerGroup), and runs one thread per group that loads it, then loops: plan a step over
// the job parts on the group (Scheduler), send it to every rank, apply the results — tokens
// and stops (job_outcome.h), capacity (WorkerGroup) — and push each job's events to its
// queue. A maintenance thread follows the discovery source and renews leases. A group that
// fails or leaves has its unfinished branches placed again (placement.h) on the others.
// Submit, Abort, Get and Stats are safe from any thread; one mutex guards jobs and groups,
// and no RPC runs under it.
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
#include "base/tls/tls.h"
#include "coordinator/api/model_front_end.h"
#include "coordinator/api/validated_request.h"
#include "coordinator/groups/worker_discovery.h"
#include "coordinator/groups/worker_group.h"
#include "coordinator/runner/job_state.h"
#include "coordinator/runner/runner_stats.h"
#include "coordinator/scheduler/scheduler.h"
#include "rami/v1/inference.pb.h"

namespace rami::coordinator {

struct RunnerConfig {
  SchedulerConfig scheduler;
  bool lookahead = false;  // send step t+1 before step t's results arrive
  int queue_limit = 1024;  // jobs waiting or running (finished ones never count)
  // How long GetJob still answers for a finished job; then its record is dropped.
  absl::Duration finished_job_ttl = absl::Minutes(10);
  // How every group is loaded; group_id, lease epoch and holder are filled per load.
  GroupLoadOptions load;
  std::string coordinator_id = "rami-coordinator";  // the lease holder
  // The workers' secret (--worker_auth_token_file), sent on every worker call; "" = none.
  std::string worker_auth_token;
  // Mutual TLS towards the workers (--worker_tls_*); empty: plaintext.
  tls::TlsFiles worker_tls;
  absl::Duration discovery_interval = absl::Seconds(5);
  absl::Duration reload_backoff = absl::Seconds(2);  // after a failed load or a failed group
  StepDeadlines step_deadlines;
  // A job whose branches had to move this many times fails (retryable) instead of moving
  // again: a job that breaks every group it runs on must not take the cluster down.
  int max_relocations = 3;
};

// Who submits jobs: the API key's name ("" = the anonymous owner when the coordinator has no
// keys) and its limits over its jobs not yet done (0 = no limit). Only the owner of a job
// sees it (Get) or aborts it; to everyone else it does not exist.
struct JobOwner {
  std::string name;
  int max_jobs = 0;
  int max_branches = 0;  // a score-only job counts 1
};

class JobRunner {
 public:
  // Starts loading the groups `discovery` lists. `model` and `metrics` (may be null) outlive
  // the runner.
  JobRunner(const RunnerConfig& config, std::unique_ptr<WorkerDiscovery> discovery,
            const api::ModelFrontEnd* model, metrics::Metrics* metrics = nullptr);
  ~JobRunner();

  // Blocks until a group serves (OK), `timeout` passes (DEADLINE_EXCEEDED with the last load
  // error) or, for a fixed list, every group's load failed permanently (that error).
  absl::Status WaitUntilServing(absl::Duration timeout);
  // Queues validated jobs for `owner`, all or none; RESOURCE_EXHAUSTED when they would pass
  // the queue limit or the owner's max_jobs or max_branches (the message names the limit),
  // UNAVAILABLE when no group serves.
  absl::StatusOr<std::vector<std::shared_ptr<JobHandle>>> Submit(
      std::vector<api::ValidatedRequest> requests, const JobOwner& owner);
  absl::StatusOr<std::shared_ptr<JobHandle>> Submit(api::ValidatedRequest request,
                                                    const JobOwner& owner);
  // From now on Submit refuses new jobs (UNAVAILABLE); running jobs go on.
  void StartDrain();
  // Aborts `owner`'s job (or one branch of it). Idempotent: a finished job, or a finished
  // branch, is OK; NOT_FOUND when no job of `owner`'s has that id (another owner's job
  // included, so ids cannot be probed).
  absl::Status Abort(const std::string& job_id, std::optional<int> branch,
                     const std::string& owner);
  // `owner`'s job; nullopt as for Abort's NOT_FOUND.
  std::optional<rami::v1::GetJobResponse> Get(const std::string& job_id, const std::string& owner);
  RunnerStats Stats();
  // The gauges of /metrics.
  metrics::Snapshot MetricsSnapshot();
  bool healthy();  // at least one group serves
  // The cache policy the serving groups report ("" before any group has loaded).
  std::string cache_policy();

 private:
  // The group's thread: load, serve until it fails or leaves, reload after a pause.
  void GroupLoop(WorkerGroup* g);
  absl::Status LoadGroup(WorkerGroup& g);
  // One step of `g`; returns false when there was nothing to do.
  bool StepOnce(WorkerGroup& g);
  // Plans `g`'s next step; nullopt when there is nothing to run.
  std::optional<worker::v1::StepPlan> PlanStep(WorkerGroup& g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyResults(WorkerGroup& g, const std::vector<worker::v1::StepResult>& results)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A score-only job on `g` after a step: finished once its prompt is scored.
  void FinishScoreOnly(WorkerGroup& g, JobState& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No step could be planned on `g` and none is in flight: unblock or drop finished jobs.
  void HandleIdle(WorkerGroup& g, const std::vector<Job*>& active)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `g` failed or left: its job parts are gone; their unfinished branches move to serving
  // groups, or their jobs fail (retryable).
  void Evacuate(WorkerGroup& g, const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Places `branches` of `job` on serving groups; false when no group serves.
  bool Place(JobState& job, std::vector<Branch> branches) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops jobs that are done and hold no worker sequence (their records stay for GetJob for
  // finished_job_ttl), and expired records.
  void Reap() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The maintenance thread: discovery refreshes and lease renewals.
  void Maintain();
  void Refresh() ABSL_LOCKS_EXCLUDED(mu_);
  void RenewLeases() ABSL_LOCKS_EXCLUDED(mu_);

  RunnerConfig config_;
  std::unique_ptr<WorkerDiscovery> discovery_;  // maintenance thread only
  const api::ModelFrontEnd* model_;
  metrics::Metrics* metrics_;
  ModelIdentity identity_;  // what every rank must report having loaded

  absl::Mutex mu_;
  absl::CondVar work_;
  std::map<int, std::unique_ptr<WorkerGroup>> groups_ ABSL_GUARDED_BY(mu_);
  int next_group_ ABSL_GUARDED_BY(mu_) = 1;
  JobTable jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, JobId> by_name_ ABSL_GUARDED_BY(mu_);
  // Records of reaped jobs for GetJob, with their owners, and when each expires (in reaping
  // order).
  struct FinishedRecord {
    std::string owner;
    rami::v1::GetJobResponse record;
  };
  std::map<std::string, FinishedRecord> finished_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<absl::Time, std::string>> finished_expiry_ ABSL_GUARDED_BY(mu_);
  RunnerStats stats_ ABSL_GUARDED_BY(mu_);
  JobId next_job_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Status last_load_error_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread maintenance_;
};

}  // namespace rami::coordinator
