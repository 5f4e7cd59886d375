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
// Capture policy: the first step of a key runs eagerly (it warms up cuBLASLt's plans and
// lazily loaded kernels, which must not happen during a capture), the second is captured and
// replayed, later ones replay. A capture that fails (an operation a capture does not allow)
// makes the key eager for good; the step itself still runs, eagerly. Host-only bookkeeping
// besides the CUDA calls; one thread (the worker's compute thread) uses it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace rami::cuda {

struct DecodeGraphStats {
  int64_t eager = 0;     // steps run without a graph (first of a key, or capture failed)
  int64_t captures = 0;  // graphs captured and instantiated (incl. recaptures)
  int64_t replays = 0;   // steps run as a graph launch (incl. right after a capture)
  int64_t failed = 0;    // captures that failed (their key runs eagerly since)
};

class DecodeGraphs {
 public:
  DecodeGraphs() = default;
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // Runs `enqueue` (which launches the step's forward pass on `stream` and nothing else: no
  // allocation, no host synchronization, no pageable copy) for the key: eagerly, or captured
  // and replayed as above. An error of `enqueue` is returned as is.
  absl::Status Run(std::pair<int, int> key, const std::vector<const void*>& pointers,
                   cudaStream_t stream, absl::FunctionRef<absl::Status()> enqueue);

  // Destroys every graph (e.g. before the buffers they read are freed).
  void Clear();
  const DecodeGraphStats& stats() const { return stats_; }

 private:
  struct Entry {
    int seen = 0;                       // steps of this key so far
    bool eager_only = false;            // a capture failed
    cudaGraphExec_t exec = nullptr;     // null until captured
    std::vector<const void*> pointers;  // at capture
  };

  std::map<std::pair<int, int>, Entry> entries_;
  DecodeGraphStats stats_;
};

}  // namespace rami::cuda
