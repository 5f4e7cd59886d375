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

class WorkerGroup {
 public:
  explicit WorkerGroup(int world_size);
  ~WorkerGroup();

  bool ok() const;
  int size() const { return static_cast<int>(procs_.size()); }
  WorkerProcess& rank(int r) { return *procs_[r]; }

  // LoadShard on every rank concurrently (collectives rendezvous through rank 0). Returns the
  // first error. `edit` may change the request before it is sent.
  absl::Status Load(const std::string& model_dir, int64_t kv_cache_bytes,
                    double collective_timeout_seconds = 10.0, const std::string& cache_policy = "");
  // Sends `plan` to the given ranks (all by default) and returns their results in rank order.
  std::vector<worker::v1::StepResult> Step(const worker::v1::StepPlan& plan,
                                           std::vector<int> ranks = {});

 private:
  struct Stream;
  std::vector<std::unique_ptr<WorkerProcess>> procs_;
  std::vector<std::unique_ptr<Stream>> streams_;
  int incarnation_ = 0;
};

}  // namespace rami::testing
