// ThreadGroupCollectives: tensor-parallel collectives between ranks that are threads of one
// process (tests run TP=2 in-process and compare with TP=1). A real sum over shared memory,
// synchronised by a barrier; each rank holds its own object.
#pragma once

#include <barrier>
#include <memory>
#include <vector>

#include "worker/collectives/collectives.h"

namespace rami::testing {

using collectives::Collectives;

class ThreadGroup {
 public:
  explicit ThreadGroup(int world_size)
      : world_size_(world_size), barrier_(world_size), slots_(world_size) {}
  int world_size() const { return world_size_; }

 private:
  friend class ThreadGroupCollectives;
  int world_size_;
  std::barrier<> barrier_;
  std::vector<std::vector<float>> slots_;  // [world_size] each rank's contribution
};

class ThreadGroupCollectives final : public Collectives {
 public:
  ThreadGroupCollectives(ThreadGroup* group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return group_->world_size(); }
  absl::Status AllReduceSum(float* data, size_t count) override;
  absl::Status AllGather(const float* in, size_t count, float* out) override;
  absl::Status Broadcast(float* data, size_t count, int root) override;

 private:
  ThreadGroup* group_;
  int rank_;
};

}  // namespace rami::testing
