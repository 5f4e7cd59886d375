// Collectives: the tensor-parallel communication a forward pass needs, behind one small
// interface (NCCL on GPU and Gloo on CPU implement it in the worker service; a single rank
// needs no communication at all). Buffers live where the implementation computes: host memory
// for Gloo and SingleRankCollectives, device memory for NcclCollectives.
#pragma once

#include <cstddef>

#include "absl/status/status.h"

namespace rami::collectives {

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // data[i] = Σ over ranks of data[i]; count elements, in place.
  virtual absl::Status AllReduceSum(float* data, size_t count) = 0;
  // out = concatenation of every rank's `in` (count elements each) in rank order:
  // out[r * count + i] = in_of_rank_r[i].
  virtual absl::Status AllGather(const float* in, size_t count, float* out) = 0;
  // data = root's data on every rank.
  virtual absl::Status Broadcast(float* data, size_t count, int root) = 0;
  // Waits until every collective issued so far has completed, and returns the first failure
  // not yet reported. The CPU implementations complete each call before returning, so theirs
  // is a no-op; NCCL's calls only enqueue on the compute stream
  // (worker/collectives/nccl_collectives.h).
  virtual absl::Status Synchronize() { return absl::OkStatus(); }
};

// World of one: reductions are the identity.
class SingleRankCollectives final : public Collectives {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceSum(float*, size_t) override { return absl::OkStatus(); }
  absl::Status AllGather(const float* in, size_t count, float* out) override;
  absl::Status Broadcast(float*, size_t, int) override { return absl::OkStatus(); }
};

}  // namespace rami::collectives
