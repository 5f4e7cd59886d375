// Concurrent LoadShard and lockstep Step streams over real processes.
#include "tests/integration/worker_group.h"

#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "proto/status_conversion.h"
#include "proto/worker_credentials.h"

namespace rami::testing {

namespace v1 = worker::v1;

void SetTestLease(v1::LoadShardRequest& request) {
  request.mutable_lease()->set_holder(WorkerGroup::kTestLeaseHolder);
  request.mutable_lease()->set_epoch(kTestLeaseEpoch);
  request.mutable_lease()->set_seconds(600);
}

struct WorkerGroup::Stream {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StepPlan, v1::StepResult>> rw;
};

WorkerGroup::WorkerGroup(int world_size) {
  for (int r = 0; r < world_size; ++r) procs_.push_back(std::make_unique<WorkerProcess>());
}

WorkerGroup::~WorkerGroup() {
  for (auto& s : streams_) {
    if (s != nullptr) s->ctx.TryCancel();
  }
}

bool WorkerGroup::ok() const {
  for (const auto& p : procs_) {
    if (!p->ok()) return false;
  }
  return true;
}

absl::Status WorkerGroup::Load(const std::string& model_dir, int64_t kv_cache_bytes,
                               double collective_timeout_seconds, const std::string& cache_policy) {
  for (auto& s : streams_) {
    if (s != nullptr) s->ctx.TryCancel();
  }
  streams_.clear();
  const std::string group_id = absl::StrCat("group-", getpid(), "-", ++incarnation_);
  store_token_ = proto::NewRandomToken();
  const std::string& store_token = store_token_;
  std::vector<absl::Status> results(procs_.size());
  std::vector<std::thread> threads;
  for (int r = 0; r < size(); ++r) {
    threads.emplace_back([&, r] {
      v1::LoadShardRequest request;
      request.set_model_dir(model_dir);
      request.set_rank(r);
      request.set_world_size(size());
      request.set_cache_policy(cache_policy);
      request.set_page_size(4);
      request.set_kv_cache_bytes(kv_cache_bytes);
      request.set_collective_timeout_seconds(collective_timeout_seconds);
      request.mutable_rendezvous()->set_store_address(procs_[0]->address());
      request.mutable_rendezvous()->set_group_id(group_id);
      request.mutable_rendezvous()->set_bind_host("127.0.0.1");
      request.mutable_rendezvous()->set_store_token(store_token);
      request.mutable_lease()->set_holder(kTestLeaseHolder);
      request.mutable_lease()->set_epoch(incarnation_);
      request.mutable_lease()->set_seconds(600);
      v1::LoadShardResponse response;
      grpc::ClientContext ctx;
      results[r] = FromGrpcStatus(procs_[r]->stub().LoadShard(&ctx, request, &response));
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }
  for (int r = 0; r < size(); ++r) {
    auto stream = std::make_unique<Stream>();
    stream->rw = procs_[r]->stub().Step(&stream->ctx);
    streams_.push_back(std::move(stream));
  }
  return absl::OkStatus();
}

std::vector<v1::StepResult> WorkerGroup::Step(const v1::StepPlan& plan, std::vector<int> ranks) {
  if (ranks.empty()) {
    for (int r = 0; r < size(); ++r) ranks.push_back(r);
  }
  v1::StepPlan leased = plan;
  if (leased.lease_epoch() == 0) leased.set_lease_epoch(incarnation_);
  for (int r : ranks) streams_[r]->rw->Write(leased);
  std::vector<v1::StepResult> results(ranks.size());
  for (size_t i = 0; i < ranks.size(); ++i) {
    if (!streams_[ranks[i]]->rw->Read(&results[i])) {
      results[i].set_error_code(grpc::StatusCode::UNAVAILABLE);
      results[i].set_error_message("step stream closed");
    }
  }
  return results;
}

}  // namespace rami::testing
