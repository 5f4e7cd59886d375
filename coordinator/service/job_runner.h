// JobRunner: drives one worker group. Its thread loops: schedule a step over the active jobs
// (Scheduler), send the plan to every rank, apply the results — tokens to branches, stop
// conditions, DeepConf pruning, frees, aggregation — and push each job's events to its queue.
// Submit/Abort/Get are safe from any thread.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/aggregation/aggregator.h"
#include "coordinator/api/model_front_end.h"
#include "coordinator/api/validated_request.h"
#include "coordinator/scheduler/scheduler.h"
#include "coordinator/service/event_queue.h"
#include "coordinator/service/worker_group_client.h"
#include "rami/v1/inference.pb.h"

namespace rami::coordinator {

struct RunnerConfig {
  SchedulerConfig scheduler;
  bool lookahead = false;  // send step t+1 before step t's results arrive
  int queue_limit = 1024;  // jobs waiting or running
};

struct RunnerStats {
  uint64_t steps = 0;
  int jobs_active = 0;
  int branches_running = 0;
  int max_branches_running = 0;  // most branches decoding in one step
  // Concurrency at the memory limit: branches decoded in steps where pages (not work) were
  // the limit, and the number of such steps.
  int64_t decode_tokens = 0;
  int64_t decode_steps = 0;
  int64_t preemptions = 0;
  double step_ms_total = 0;      // wall time of the workers' steps (plan → results)
  double schedule_ms_total = 0;  // time spent planning and applying results
  int64_t free_pages = 0;
};

struct JobHandle {
  std::string id;
  EventQueue events;
};

class JobRunner {
 public:
  // `group` must be loaded; `load` is its LoadShard response. `model` outlives the runner.
  JobRunner(const RunnerConfig& config, WorkerGroupClient* group,
            const worker::v1::LoadShardResponse& load, const api::ModelFrontEnd* model);
  ~JobRunner();

  // Queues a validated job; RESOURCE_EXHAUSTED when the queue limit is reached.
  absl::StatusOr<std::shared_ptr<JobHandle>> Submit(api::ValidatedRequest request);
  // Idempotent: aborting an unknown or finished job succeeds.
  void Abort(const std::string& job_id, std::optional<int> branch);
  std::optional<rami::v1::GetJobResponse> Get(const std::string& job_id);
  RunnerStats Stats();
  bool healthy();

 private:
  struct RunnerJob;
  void Loop();
  // One step; returns false when there was nothing to do.
  bool StepOnce();
  worker::v1::StepPlan ToPlan(const StepDecision& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Apply(const std::vector<worker::v1::StepResult>& results) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnToken(RunnerJob& job, int branch, const worker::v1::SampledToken& token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishBranch(RunnerJob& job, int branch, aggregation::FinishReason reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishJob(RunnerJob& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendProgress(RunnerJob& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailJob(RunnerJob& job, const absl::Status& status, bool retryable)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No step could be planned and none is in flight: unblock or drop finished jobs.
  void HandleIdle(const std::vector<Job*>& active) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The worker group failed: every job fails (retryable), the runner serves no more.
  void Break(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A step sent whose results have not been received (loop thread only).
  struct InFlight {
    int64_t reserved_pages = 0;
    absl::Time sent;
  };
  std::deque<InFlight> in_flight_;

  RunnerConfig config_;
  WorkerGroupClient* group_;
  const api::ModelFrontEnd* model_;
  int64_t bytes_per_token_ = 0;  // per (layer, head) stream and token, K and V

  absl::Mutex mu_;
  absl::CondVar work_;
  Scheduler scheduler_ ABSL_GUARDED_BY(mu_);
  Capacity capacity_ ABSL_GUARDED_BY(mu_);
  std::map<JobId, std::unique_ptr<RunnerJob>> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, JobId> by_name_ ABSL_GUARDED_BY(mu_);
  std::map<SeqId, BranchRef> owner_ ABSL_GUARDED_BY(mu_);
  // Pages of each sequence's decode step after the next one (for plans sent one ahead).
  std::map<SeqId, int64_t> decode_need_ahead_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, rami::v1::GetJobResponse> finished_ ABSL_GUARDED_BY(mu_);
  RunnerStats stats_ ABSL_GUARDED_BY(mu_);
  JobId next_job_ ABSL_GUARDED_BY(mu_) = 1;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace rami::coordinator
