// Helpers of the end-to-end tests that drive rami.v1.Inference: run a job to its end and
// keep every event, by kind.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "rami/v1/inference.grpc.pb.h"

namespace rami::testing {

// The tiny DMS model with its byte-level tokenizer.
std::string ModelDir();

struct JobOutput {
  grpc::Status status;
  std::vector<rami::v1::GenerateEvent> events;
  std::map<int, std::string> delta_text;          // branch → concatenated Delta text
  std::map<int, std::vector<int32_t>> delta_ids;  // branch → streamed token ids
  std::map<int, rami::v1::BranchFinished> finished;
  std::optional<rami::v1::Result> result;
  std::optional<rami::v1::Error> error;
  std::string job_id;
};

// `api_key`: sent as `authorization: Bearer <key>` when not empty.
JobOutput RunJob(rami::v1::Inference::Stub& stub, const rami::v1::GenerateRequest& request,
                 std::function<void(const rami::v1::GenerateEvent&)> on_event = nullptr,
                 const std::string& api_key = "");

// n branches of `prompt`, seed 7, majority vote over the last lower-case letter, deltas on.
rami::v1::GenerateRequest BestOf(int n, const std::string& prompt, int max_tokens,
                                 float temperature);

}  // namespace rami::testing
