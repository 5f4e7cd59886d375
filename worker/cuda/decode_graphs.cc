// Capture and replay of the decode steps' CUDA graphs; see decode_graphs.h.
#include "worker/cuda/decode_graphs.h"

#include "base/status_macros.h"
#include "worker/cuda/cuda_status.h"

namespace rami::cuda {

DecodeGraphs::~DecodeGraphs() { Clear(); }

void DecodeGraphs::Clear() {
  for (auto& [key, entry] : entries_) {
    if (entry.exec != nullptr) cudaGraphExecDestroy(entry.exec);
    entry.exec = nullptr;
  }
  entries_.clear();
}

absl::Status DecodeGraphs::Run(std::pair<int, int> key, const std::vector<const void*>& pointers,
                               cudaStream_t stream, absl::FunctionRef<absl::Status()> enqueue) {
  Entry& e = entries_[key];
  if (e.exec != nullptr && e.pointers != pointers) {  // a buffer moved: capture again
    cudaGraphExecDestroy(e.exec);
    e.exec = nullptr;
  }
  if (e.eager_only || (e.exec == nullptr && e.seen++ == 0)) {
    ++stats_.eager;
    return enqueue();
  }
  if (e.exec == nullptr) {
    // Thread-local mode: other threads (NCCL's watchdog polling events) are not affected.
    RAMI_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const absl::Status launched = enqueue();
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = launched.ok() && ended == cudaSuccess
                                 ? cudaGraphInstantiate(&exec, graph, /*flags=*/0)
                                 : cudaErrorStreamCaptureInvalidated;
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (!launched.ok() || made != cudaSuccess) {
      // Nothing captured ran: clear the capture's error and run the step eagerly (an error of
      // the step itself comes back from that run).
      (void)cudaGetLastError();
      e.eager_only = true;
      ++stats_.failed;
      ++stats_.eager;
      return enqueue();
    }
    e.exec = exec;
    e.pointers = pointers;
    ++stats_.captures;
  }
  ++stats_.replays;
  RAMI_CUDA_OK(cudaGraphLaunch(e.exec, stream));
  return absl::OkStatus();
}

}  // namespace rami::cuda
