// DecodeGraphs: CUDA graphs of the decode steps' forward pass, one per (batch bucket, decode
// splits) key (buckets: worker/engine/cuda_step_plan.h DecodeBucket). A decode step launches a few
// hundred small kernels per token of the batch; replaying them as one graph takes the host's
// launch cost out of the step (vLLM and TensorRT-LLM do the same).
//
// A graph bakes in every pointer and size its launches read, so a key's graph is replayed only
// while the step's `pointers` (scratch buffers, device page tables: they move when they grow)
// equal those at capture; otherwise it is captured again. Everything a step varies — token ids,
// positions, streams, page tables, flags, the KV pool — is read through those pointers, and is
// written before the replay (the packed step plan copy, the table deltas).
//
// When to run eagerly, capture or replay is engine::DecodeGraphPolicy's (host-only, tested
// without a GPU): first step of a key eager, second captured, later replayed; a failed capture
// makes the key eager for good — on every rank of a group, through the agreement each graph
// step ends with. One thread (the worker's compute thread) uses it.
#pragma once

#include <cuda_runtime_api.h>

#include <map>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine/decode_graph_policy.h"

namespace rami::cuda {

class DecodeGraphs {
 public:
  DecodeGraphs() = default;
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // Runs `enqueue` (which launches the step's forward pass on `stream` and nothing else: no
  // allocation, no host synchronization, no pageable copy) for the key: eagerly, or captured
  // and replayed as above. `agree` is the group's agreement: given whether this rank's capture
  // in this step failed, whether any rank's did (a world of one returns its argument); every
  // rank calls it at every graph step. An error of `enqueue` or `agree` is returned as is.
  absl::Status Run(std::pair<int, int> key, const std::vector<const void*>& pointers,
                   cudaStream_t stream, absl::FunctionRef<absl::Status()> enqueue,
                   absl::FunctionRef<absl::StatusOr<bool>(bool)> agree);

  // Destroys every graph (e.g. before the buffers they read are freed).
  void Clear();
  const engine::DecodeGraphStats& stats() const { return policy_.stats(); }

 private:
  void Destroy(std::pair<int, int> key);

  engine::DecodeGraphPolicy policy_;
  std::map<std::pair<int, int>, cudaGraphExec_t> execs_;
};

}  // namespace rami::cuda
