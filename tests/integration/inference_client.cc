// Running rami.v1.Inference jobs in tests.
#include "tests/integration/inference_client.h"

#include "absl/time/clock.h"

namespace rami::testing {

namespace v1 = rami::v1;

std::string ModelDir() { return std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/qwen3_dms"; }

JobOutput RunJob(v1::Inference::Stub& stub, const v1::GenerateRequest& request,
                 std::function<void(const v1::GenerateEvent&)> on_event,
                 const std::string& api_key) {
  JobOutput out;
  grpc::ClientContext ctx;
  if (!api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + api_key);
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  std::unique_ptr<grpc::ClientReader<v1::GenerateEvent>> reader = stub.Generate(&ctx, request);
  v1::GenerateEvent event;
  while (reader->Read(&event)) {
    if (out.job_id.empty()) out.job_id = event.job_id();
    if (event.has_delta()) {
      out.delta_text[event.delta().branch()] += event.delta().text();
      for (int32_t id : event.delta().token_ids())
        out.delta_ids[event.delta().branch()].push_back(id);
    }
    if (event.has_branch_finished())
      out.finished[event.branch_finished().branch()] = event.branch_finished();
    if (event.has_result()) out.result = event.result();
    if (event.has_error()) out.error = event.error();
    out.events.push_back(event);
    if (on_event) on_event(event);
  }
  out.status = reader->Finish();
  return out;
}

v1::GenerateRequest BestOf(int n, const std::string& prompt, int max_tokens, float temperature) {
  v1::GenerateRequest r;
  r.set_prompt(prompt);
  r.set_n(n);
  r.mutable_sampling()->set_temperature(temperature);
  r.mutable_sampling()->set_seed(7);
  r.mutable_stopping()->set_max_tokens(max_tokens);
  r.mutable_aggregation()->set_policy(v1::MAJORITY_VOTE);
  r.mutable_aggregation()->mutable_extractor()->set_regex("([a-z])[^a-z]*$");
  r.set_stream_deltas(true);
  return r;
}

}  // namespace rami::testing
