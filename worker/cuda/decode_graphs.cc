// Capture and replay of the decode steps' CUDA graphs; see decode_graphs.h.
#include "worker/cuda/decode_graphs.h"

#include "base/status_macros.h"
#include "worker/cuda/cuda_status.h"

namespace rami::cuda {

using Action = engine::DecodeGraphPolicy::Action;

DecodeGraphs::~DecodeGraphs() { Clear(); }

void DecodeGraphs::Clear() {
  for (auto& [key, exec] : execs_) cudaGraphExecDestroy(exec);
  execs_.clear();
  policy_ = engine::DecodeGraphPolicy();
}

void DecodeGraphs::Destroy(std::pair<int, int> key) {
  auto it = execs_.find(key);
  if (it == execs_.end()) return;
  cudaGraphExecDestroy(it->second);
  execs_.erase(it);
}

absl::Status DecodeGraphs::Run(std::pair<int, int> key, const std::vector<const void*>& pointers,
                               cudaStream_t stream, absl::FunctionRef<absl::Status()> enqueue,
                               absl::FunctionRef<absl::StatusOr<bool>(bool)> agree) {
  const Action begin = policy_.Begin(key, pointers);
  if (policy_.Dropped()) Destroy(key);  // its pointers moved: captured again below
  cudaGraphExec_t fresh = nullptr;
  if (begin == Action::kCapture) {
    // Thread-local mode: other threads (NCCL's watchdog polling events) are not affected.
    RAMI_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const absl::Status launched = enqueue();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    const cudaError_t made = launched.ok() && ended == cudaSuccess
                                 ? cudaGraphInstantiate(&fresh, graph, /*flags=*/0)
                                 : cudaErrorStreamCaptureInvalidated;
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (made != cudaSuccess) {
      // Nothing captured ran: clear the capture's error (the eager run below reports the step's
      // own errors).
      (void)cudaGetLastError();
      fresh = nullptr;
    }
    policy_.Captured(fresh != nullptr);
  }
  const absl::StatusOr<bool> any_failed = agree(policy_.failed_here());
  if (!any_failed.ok()) {
    if (fresh != nullptr) cudaGraphExecDestroy(fresh);
    return any_failed.status();
  }
  const Action action = policy_.Agree(*any_failed);
  if (fresh != nullptr) {
    if (action == Action::kReplay) {
      execs_[key] = fresh;
    } else {  // another rank's capture failed: this one is dropped too
      cudaGraphExecDestroy(fresh);
    }
  }
  if (policy_.Dropped()) Destroy(key);  // the agreement ended the key's graph
  if (action != Action::kReplay) return enqueue();
  RAMI_CUDA_OK(cudaGraphLaunch(execs_.at(key), stream));
  return absl::OkStatus();
}

}  // namespace rami::cuda
