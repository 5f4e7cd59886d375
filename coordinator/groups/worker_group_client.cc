// Lockstep control of a worker group over gRPC.
#include "coordinator/groups/worker_group_client.h"

#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/host_port.h"
#include "proto/status_conversion.h"
#include "proto/worker_credentials.h"
#include "proto/worker_types.h"

namespace rami::coordinator {

namespace v1 = worker::v1;

namespace {

// Every rank's result of one step: no rank's error, and the same sampled tokens everywhere.
absl::Status CheckResultsAgree(const std::vector<v1::StepResult>& results) {
  for (size_t r = 0; r < results.size(); ++r) {
    if (results[r].error_code() != 0) {
      return absl::Status(static_cast<absl::StatusCode>(results[r].error_code()),
                          absl::StrCat("rank ", r, ": ", results[r].error_message()));
    }
  }
  for (size_t r = 1; r < results.size(); ++r) {
    bool same = results[r].tokens_size() == results[0].tokens_size();
    for (int i = 0; same && i < results[0].tokens_size(); ++i) {
      same = results[r].tokens(i).seq_id() == results[0].tokens(i).seq_id() &&
             results[r].tokens(i).token_id() == results[0].tokens(i).token_id();
    }
    if (!same) return absl::InternalError(absl::StrCat("ranks 0 and ", r, " sampled differently"));
  }
  return absl::OkStatus();
}

}  // namespace

struct WorkerGroupClient::Rank {
  std::unique_ptr<v1::Worker::Stub> stub;
  std::unique_ptr<grpc::ClientContext> step_ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StepPlan, v1::StepResult>> step;
};

WorkerGroupClient::WorkerGroupClient(std::vector<std::string> addresses,
                                     const std::string& auth_token, const tls::TlsFiles& tls)
    : addresses_(std::move(addresses)) {
  for (const std::string& address : addresses_) {
    auto rank = std::make_unique<Rank>();
    rank->stub = v1::Worker::NewStub(proto::NewWorkerChannel(address, auth_token, tls));
    ranks_.push_back(std::move(rank));
  }
}

WorkerGroupClient::~WorkerGroupClient() { Cancel(/*forever=*/true); }

absl::StatusOr<std::vector<v1::LoadShardResponse>> WorkerGroupClient::Load(
    const GroupLoadOptions& o) {
  std::vector<grpc::ClientContext> contexts(ranks_.size());
  {
    absl::MutexLock lock(&streams_mu_);
    if (cancelled_forever_) return absl::CancelledError("the worker group client was shut down");
    for (auto& rank : ranks_) {
      if (rank->step_ctx != nullptr) rank->step_ctx->TryCancel();
      rank->step.reset();
      rank->step_ctx.reset();
    }
    for (grpc::ClientContext& ctx : contexts) {
      ctx.set_wait_for_ready(true);  // workers may still be starting
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + o.load_timeout));
      load_contexts_.push_back(&ctx);
    }
  }
  std::vector<absl::Status> status(ranks_.size());
  std::vector<v1::LoadShardResponse> responses(ranks_.size());
  const std::string store_token = proto::NewRandomToken();  // this load's ranks only
  std::vector<std::thread> threads;
  for (int r = 0; r < size(); ++r) {
    threads.emplace_back([&, r] {
      v1::LoadShardRequest request;
      request.set_model_dir(o.model_dir);
      request.set_rank(r);
      request.set_world_size(size());
      request.set_cache_policy(o.cache_policy);
      request.set_page_size(o.page_size);
      request.set_kv_cache_bytes(o.kv_cache_bytes);
      request.set_collective_timeout_seconds(o.collective_timeout_seconds);
      request.set_gpu_memory_utilization(o.gpu_memory_utilization);
      request.set_max_step_tokens(o.max_step_tokens);
      request.set_max_step_sequences(o.max_step_sequences);
      *request.mutable_device() = proto::DeviceToProto(o.device);
      request.set_dtype(proto::ComputeDTypeToProto(o.dtype));
      request.set_enforce_eager(o.enforce_eager);
      if (!o.lease_holder.empty()) {
        request.mutable_lease()->set_holder(o.lease_holder);
        request.mutable_lease()->set_epoch(o.lease_epoch);
        request.mutable_lease()->set_seconds(o.lease_seconds);
      }
      request.mutable_rendezvous()->set_store_address(addresses_[0]);
      request.mutable_rendezvous()->set_group_id(o.group_id);
      request.mutable_rendezvous()->set_store_token(store_token);
      // The rank's collective listeners bind where the coordinator reaches it, never 0.0.0.0.
      request.mutable_rendezvous()->set_bind_host(std::string(HostOf(addresses_[r])));
      status[r] = FromGrpcStatus(ranks_[r]->stub->LoadShard(&contexts[r], request, &responses[r]));
    });
  }
  for (std::thread& t : threads) t.join();
  {
    absl::MutexLock lock(&streams_mu_);
    load_contexts_.clear();
  }
  for (int r = 0; r < size(); ++r) {
    if (!status[r].ok()) {
      return absl::Status(status[r].code(), absl::StrCat("rank ", r, " (", addresses_[r],
                                                         "): ", status[r].message()));
    }
  }
  lease_holder_ = o.lease_holder;
  lease_epoch_ = o.lease_epoch;
  absl::MutexLock lock(&streams_mu_);
  for (auto& rank : ranks_) {
    rank->step_ctx = std::make_unique<grpc::ClientContext>();
    rank->step = rank->stub->Step(rank->step_ctx.get());
  }
  return responses;
}

absl::Status WorkerGroupClient::Send(const v1::StepPlan& plan) {
  for (int r = 0; r < size(); ++r) {
    if (ranks_[r]->step == nullptr) return absl::FailedPreconditionError("group not loaded");
    if (!ranks_[r]->step->Write(plan)) {
      return absl::UnavailableError(
          absl::StrCat("rank ", r, " (", addresses_[r], "): step stream closed"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::StepResult>> WorkerGroupClient::Receive(absl::Time deadline) {
  std::vector<v1::StepResult> results(ranks_.size());
  // Every rank is read at once: a dead rank must fail the step now, not after the live ranks
  // give up on their collectives (which would only happen at the collective timeout). The
  // first rank whose stream breaks is the one to blame: the others' reads end because of it.
  struct Reads {
    absl::Mutex mu;
    std::vector<char> answered;
    int done = 0;
    int first_broken = -1;
    bool timed_out = false;
  } reads;
  reads.answered.assign(ranks_.size(), 0);
  auto read_rank = [&](int r) {
    const bool read = ranks_[r]->step != nullptr && ranks_[r]->step->Read(&results[r]);
    {
      absl::MutexLock lock(&reads.mu);
      reads.answered[r] = read;
      ++reads.done;
      if (!read && reads.first_broken < 0 && !reads.timed_out) reads.first_broken = r;
    }
    if (!read) Cancel();
  };
  std::vector<std::thread> readers;
  for (int r = 0; r < size(); ++r) readers.emplace_back(read_rank, r);
  std::string late;  // the ranks that had not answered by the deadline
  {
    absl::MutexLock lock(&reads.mu);
    const int n = size();
    auto all_done = [&reads, n] { return reads.done == n; };
    if (!reads.mu.AwaitWithDeadline(absl::Condition(&all_done), deadline)) {
      reads.timed_out = true;
      for (int r = 0; r < n; ++r) {
        if (!reads.answered[r])
          absl::StrAppend(&late, late.empty() ? "" : ", ", "rank ", r, " (", addresses_[r], ")");
      }
    }
  }
  if (!late.empty()) Cancel();  // the blocked reads end now
  for (std::thread& t : readers) t.join();
  if (!late.empty()) {
    return absl::DeadlineExceededError(absl::StrCat(
        late, ": no step result by the group's step deadline (a stopped or wedged worker)"));
  }
  if (reads.first_broken >= 0) {
    const int r = reads.first_broken;
    return absl::UnavailableError(
        absl::StrCat("rank ", r, " (", addresses_[r], "): step stream closed"));
  }
  if (absl::Status s = CheckResultsAgree(results); !s.ok()) return s;
  return results;
}

absl::StatusOr<std::vector<v1::StepResult>> WorkerGroupClient::Step(const v1::StepPlan& plan) {
  if (absl::Status s = Send(plan); !s.ok()) return s;
  return Receive();
}

void WorkerGroupClient::Cancel(bool forever) {
  absl::MutexLock lock(&streams_mu_);
  cancelled_forever_ |= forever;
  for (grpc::ClientContext* ctx : load_contexts_) ctx->TryCancel();
  for (auto& rank : ranks_) {
    if (rank->step_ctx != nullptr) rank->step_ctx->TryCancel();
  }
}

absl::Status WorkerGroupClient::RenewLease() {
  if (lease_holder_.empty()) return absl::OkStatus();
  for (int r = 0; r < size(); ++r) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::RenewLeaseRequest request;
    request.set_holder(lease_holder_);
    request.set_epoch(lease_epoch_);
    v1::RenewLeaseResponse response;
    absl::Status s = FromGrpcStatus(ranks_[r]->stub->RenewLease(&ctx, request, &response));
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("rank ", r, " (", addresses_[r], "): ", s.message()));
    }
  }
  return absl::OkStatus();
}

bool WorkerGroupClient::Healthy() {
  for (auto& rank : ranks_) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    v1::HealthResponse response;
    if (!rank->stub->Health(&ctx, v1::HealthRequest(), &response).ok() ||
        response.state() != v1::HealthResponse::SERVING) {
      return false;
    }
  }
  return true;
}

}  // namespace rami::coordinator
