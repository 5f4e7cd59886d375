// WorkerGroupClient: the coordinator's handle on one tensor-parallel worker group — the
// ranks' control channels, LoadShard on every rank at once, and lockstep steps: the same
// plan to every rank's Step stream, one result back from each, checked to agree.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/device.h"
#include "base/tls/tls.h"
#include "rami/worker/v1/worker.grpc.pb.h"

namespace rami::coordinator {

struct GroupLoadOptions {
  std::string model_dir;
  std::string cache_policy;  // "" = the checkpoint's
  int page_size = 16;
  int64_t kv_cache_bytes = 256 << 20;  // per rank
  double collective_timeout_seconds = 30;
  std::string group_id;  // unique per load (prefixes the rendezvous keys)
  // The lease this coordinator holds the workers under (worker.proto: Lease).
  std::string lease_holder;
  int64_t lease_epoch = 0;
  double lease_seconds = 15;
  double gpu_memory_utilization = 0;  // 0: the worker's default
  // The scheduler's largest step (LoadShardRequest.max_step_tokens, max_step_sequences).
  int max_step_tokens = 0;
  int max_step_sequences = 0;
  Device device;  // every rank's LoadShard device
  // Every rank's LoadShard dtype: kDefault = the device's (cpu: fp32, cuda: bf16); bf16 or fp32
  // on CUDA (fp32: the exactness mode); the CPU takes fp32 only.
  ComputeDType dtype = ComputeDType::kDefault;
  bool enforce_eager = false;  // CUDA: no graphs (LoadShardRequest.enforce_eager)
  absl::Duration load_timeout = absl::Seconds(120);
};

class WorkerGroupClient {
 public:
  // `addresses`: host:port of ranks 0…T−1. `auth_token`: the workers' secret (their
  // --auth_token_file), sent on every call (proto/worker_credentials.h); "" for open ports.
  // `tls`: the coordinator's certificate (CN rami-coordinator) and the workers' CA for mutual
  // TLS; empty: plaintext.
  explicit WorkerGroupClient(std::vector<std::string> addresses, const std::string& auth_token = "",
                             const tls::TlsFiles& tls = {});
  ~WorkerGroupClient();

  int size() const { return static_cast<int>(addresses_.size()); }
  // Loads the model on every rank concurrently and opens the Step streams; each load gets a
  // fresh random store token (Rendezvous.store_token) for the ranks' rendezvous. Returns every
  // rank's response, in rank order (WorkerGroup::OnLoaded checks and merges them).
  absl::StatusOr<std::vector<worker::v1::LoadShardResponse>> Load(const GroupLoadOptions& options);
  // Runs one plan on every rank. A rank's step error is returned as that error; results of
  // ranks whose sampled tokens disagree are an INTERNAL error. On success: one result per rank.
  absl::StatusOr<std::vector<worker::v1::StepResult>> Step(const worker::v1::StepPlan& plan);
  // Step in two halves, for one-step lookahead: plans are answered in order, so a second
  // plan may be sent before the first one's results are received.
  absl::Status Send(const worker::v1::StepPlan& plan);
  // The oldest step's results. A rank that has not answered by `deadline` fails it with
  // DEADLINE_EXCEEDED naming that rank (a stopped or wedged worker never closes its stream);
  // a rank whose stream breaks fails it with UNAVAILABLE naming the rank that broke first.
  absl::StatusOr<std::vector<worker::v1::StepResult>> Receive(
      absl::Time deadline = absl::InfiniteFuture());
  // True when every rank reports SERVING.
  bool Healthy();
  // Renews the lease on every rank; FAILED_PRECONDITION when a rank has been taken over.
  absl::Status RenewLease();
  // Ends the Step streams and a Load in progress: a Receive blocked on them returns
  // UNAVAILABLE. With `forever`, later Loads fail at once (CANCELLED). Thread-safe.
  void Cancel(bool forever = false);
  const std::vector<std::string>& addresses() const { return addresses_; }

 private:
  struct Rank;
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<Rank>> ranks_;
  absl::Mutex streams_mu_;  // Cancel (any thread) vs. Load replacing the Step streams
  std::vector<grpc::ClientContext*> load_contexts_ ABSL_GUARDED_BY(streams_mu_);
  bool cancelled_forever_ ABSL_GUARDED_BY(streams_mu_) = false;
  std::string lease_holder_;
  int64_t lease_epoch_ = 0;
};

}  // namespace rami::coordinator
