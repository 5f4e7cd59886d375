// Barrier-synchronised collectives between threads: publish, wait, read everyone's, wait.
#include "tests/testing/thread_collectives.h"

#include <algorithm>

namespace rami::testing {

absl::Status ThreadGroupCollectives::AllReduceSum(float* data, size_t count) {
  group_->slots_[rank_].assign(data, data + count);
  group_->barrier_.arrive_and_wait();
  std::fill(data, data + count, 0.0f);
  // Every rank adds in rank order, so all ranks get bit-identical sums.
  for (const std::vector<float>& slot : group_->slots_) {
    for (size_t i = 0; i < count; ++i) data[i] += slot[i];
  }
  group_->barrier_.arrive_and_wait();  // nobody overwrites a slot still being read
  return absl::OkStatus();
}

absl::Status ThreadGroupCollectives::AllGather(const float* in, size_t count, float* out) {
  group_->slots_[rank_].assign(in, in + count);
  group_->barrier_.arrive_and_wait();
  for (int r = 0; r < world_size(); ++r) {
    std::copy(group_->slots_[r].begin(), group_->slots_[r].end(), out + r * count);
  }
  group_->barrier_.arrive_and_wait();
  return absl::OkStatus();
}

absl::Status ThreadGroupCollectives::Broadcast(float* data, size_t count, int root) {
  if (rank_ == root) group_->slots_[rank_].assign(data, data + count);
  group_->barrier_.arrive_and_wait();
  if (rank_ != root) std::copy_n(group_->slots_[root].begin(), count, data);
  group_->barrier_.arrive_and_wait();
  return absl::OkStatus();
}

}  // namespace rami::testing
