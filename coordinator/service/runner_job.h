// JobRunner::RunnerJob: a job as the runner tracks it — the scheduler's Job plus the
// request, the event queue, each branch's output and the aggregation state. Internal to
// job_runner*.cc.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "coordinator/aggregation/answer_extractor.h"
#include "coordinator/aggregation/early_pruning.h"
#include "coordinator/service/branch_output.h"
#include "coordinator/service/job_runner.h"

namespace rami::coordinator {

struct JobRunner::RunnerJob {
  Job job;
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
  int64_t kv_bytes = 0;  // at the last step
  absl::Time progress_sent = absl::InfinitePast();
  double compression_ratio = 1.0;
  bool done = false;  // its terminal event was sent
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
