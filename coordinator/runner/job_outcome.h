// What a job's step results mean for it: accepted tokens streamed to the client, branches
// ending (stop conditions, DeepConf pruning, a decided vote) and the job ending — aggregated
// into its Result, or failed with an Error. Each function pushes the job's events; none talks
// to a worker (a finished branch is only marked for freeing, and the next plan frees it).
#pragma once

#include "absl/status/status.h"
#include "coordinator/runner/job_state.h"
#include "rami/v1/inference.pb.h"
#include "rami/worker/v1/worker.pb.h"

namespace rami::coordinator {

// Adds `token` (sampled for branch `b`, which is running) to its output: a Delta when the
// client streams deltas, then BranchFinished when a stop condition holds.
void AcceptToken(JobState& job, Branch& b, const worker::v1::SampledToken& token);

// Ends branch `i` (no-op when it already ended): its sequence is freed by the next plan, its
// answer extracted, the pruner told; streams BranchFinished.
void FinishBranch(JobState& job, int i, aggregation::FinishReason reason);

// After a step: DeepConf prunes running branches below the threshold, and with
// stop_when_decided the job's remaining branches end once the vote cannot change.
void PruneBranches(JobState& job);

// Ends the job (no-op when it already ended) with its Result (votes, answer, branches,
// usage), once every branch has ended; its roots are freed by the next plans. Sets
// `job.record` (FINISHED, with the Result).
void FinishJob(JobState& job);

// Ends the job (no-op when it already ended) with an Error; every sequence it holds is freed
// by the next plans. Sets `job.record` (ABORTED for an abort, else FAILED).
void FailJob(JobState& job, const absl::Status& status, bool retryable);

// Streams a Progress event (branches running and done, KV bytes, compression).
void SendProgress(JobState& job);

// Conversions between the aggregation library's enums and the public API's.
rami::v1::FinishReason ToProto(aggregation::FinishReason r);
aggregation::AggregationPolicy ToAggregation(api::AggregationPolicy p);

}  // namespace rami::coordinator
