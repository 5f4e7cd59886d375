// DeviceSampler: samples tokens from a step's logits where they are, on the device, so that a
// decode step returns one token per sequence instead of its full-vocabulary row (at batch 256
// and a 152k vocabulary the rows are 155 MB of fp32 per step). Same semantics and tokens as the
// host sampler (worker/engine/sampler.h over kernels/sampling.h; SampleCuda is the CPU twin's GPU
// version, tested against it). A row without a distribution (a NaN or +Inf logit, or none
// finite) is flagged by the kernel and comes back as a token with an error status, as on the
// host. Requests must be valid (ValidateSamplingParams: the Engine checks them when a
// sequence's sampling parameters arrive).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/cuda/device_dtype.h"
#include "worker/engine/sampler.h"

namespace rami::cuda {

class DeviceSampler {
 public:
  explicit DeviceSampler(cudaStream_t stream) : stream_(stream) {}
  ~DeviceSampler();
  DeviceSampler(const DeviceSampler&) = delete;
  DeviceSampler& operator=(const DeviceSampler&) = delete;

  // One token per request; requests[i].row is a step row of `logits`, the LM head's output of
  // `world` ranks, [world][rows_per_rank][vocab_local] in `dtype` (device), of which the first
  // `vocab` columns are tokens (the rest is the shards' padding, never sampled). Enqueues on
  // the stream after what is already there, then waits for the stream.
  absl::StatusOr<std::vector<engine::SampledToken>> Sample(
      const void* logits, kernels::DeviceDType dtype, int world, int rows_per_rank, int vocab_local,
      int vocab, absl::Span<const engine::SampleRequest> requests);

  // Device memory the sampler holds (its buffers grown to the largest step seen).
  size_t bytes() const { return f32_.bytes + io_.bytes + workspace_.bytes; }

 private:
  struct Buffer {  // device memory grown to the largest step seen
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  absl::StatusOr<void*> Grow(Buffer& b, size_t bytes);

  cudaStream_t stream_;  // borrowed: the model's compute stream
  Buffer f32_, io_, workspace_;
  void* pinned_ = nullptr;  // the requests in, the tokens out (host side of io_)
  size_t pinned_bytes_ = 0;
};

}  // namespace rami::cuda
