// WorkerGroup: T rami-worker processes driven as one tensor-parallel group, the way the
// coordinator drives them: LoadShard on every rank at once, then the same StepPlan to every
// rank's Step stream and one StepResult back from each.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/integration/worker_process.h"

namespace rami::testing {

// The lease single-worker tests load under: holder WorkerGroup::kTestLeaseHolder, epoch
// kTestLeaseEpoch.
inline constexpr int64_t kTestLeaseEpoch = 1;
void SetTestLease(worker::v1::LoadShardRequest& request);

class WorkerGroup {
 public:
  explicit WorkerGroup(int world_size);
  ~WorkerGroup();

  bool ok() const;
  int size() const { return static_cast<int>(procs_.size()); }
  WorkerProcess& rank(int r) { return *procs_[r]; }

  // LoadShard on every rank concurrently (collectives rendezvous through rank 0), under a
  // lease of holder kTestLeaseHolder and a new epoch, with a fresh store token. Returns the
  // first error.
  absl::Status Load(const std::string& model_dir, int64_t kv_cache_bytes,
                    double collective_timeout_seconds = 10.0, const std::string& cache_policy = "");
  // Sends `plan` to the given ranks (all by default) and returns their results in rank order.
  // A plan without lease_epoch gets the epoch of the last load.
  std::vector<worker::v1::StepResult> Step(const worker::v1::StepPlan& plan,
                                           std::vector<int> ranks = {});
  // The lease of the last load: its holder and epoch (a Shutdown must carry them).
  static constexpr char kTestLeaseHolder[] = "rami-test";
  int64_t lease_epoch() const { return incarnation_; }
  // The store token of the last load (rank 0's store serves only it).
  const std::string& store_token() const { return store_token_; }

 private:
  struct Stream;
  std::vector<std::unique_ptr<WorkerProcess>> procs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  int incarnation_ = 0;
  std::string store_token_;
};

}  // namespace rami::testing
