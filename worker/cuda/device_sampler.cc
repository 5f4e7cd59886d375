// Sampling on the device (device_sampler.h): the requested rows to fp32 (LogitsGatherCuda), the
// requests packed into one buffer and copied once, SampleCuda, the results copied back once.
#include "worker/cuda/device_sampler.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "base/status_macros.h"
#include "kernels/cuda/logits_gather.h"
#include "kernels/cuda/sampling.h"
#include "worker/cuda/cuda_status.h"

namespace rami::cuda {

using engine::SampledToken;
using engine::SampledTokens;
using engine::SampleRequest;

namespace {

size_t Align16(size_t n) { return (n + 15) / 16 * 16; }

// Offsets (bytes) of the packed requests and results of n requests with m top log-probs each.
struct IoLayout {
  size_t rows, temperature, top_k, top_p, min_p, seed, index, num_logprobs;  // requests
  size_t token, logprob, top_ids, top_logprobs;                              // results
  size_t results, bytes;  // where the results start; total
  IoLayout(size_t n, size_t m) {
    size_t at = 0;
    auto take = [&](size_t size) {
      const size_t where = at;
      at = Align16(at + size);
      return where;
    };
    rows = take(4 * n);
    temperature = take(4 * n);
    top_k = take(4 * n);
    top_p = take(4 * n);
    min_p = take(4 * n);
    seed = take(8 * n);
    index = take(8 * n);
    num_logprobs = take(4 * n);
    results = at;
    token = take(4 * n);
    logprob = take(4 * n);
    top_ids = take(4 * n * m);
    top_logprobs = take(4 * n * m);
    bytes = at;
  }
};

}  // namespace

DeviceSampler::~DeviceSampler() {
  for (Buffer* b : {&f32_, &io_, &workspace_}) cudaFree(b->ptr);
  if (pinned_ != nullptr) cudaFreeHost(pinned_);
}

absl::StatusOr<void*> DeviceSampler::Grow(Buffer& b, size_t bytes) {
  if (bytes <= b.bytes && b.ptr != nullptr) return b.ptr;
  RAMI_CUDA_OK(cudaStreamSynchronize(stream_));  // the old buffer may still be read
  cudaFree(b.ptr);
  b = {};
  const size_t capacity = std::max<size_t>(bytes, 256);
  RAMI_CUDA_OK(cudaMalloc(&b.ptr, capacity));
  b.bytes = capacity;
  return b.ptr;
}

absl::StatusOr<std::vector<SampledToken>> DeviceSampler::Sample(
    const void* logits, kernels::DeviceDType dtype, int world, int rows_per_rank, int vocab_local,
    int vocab, absl::Span<const SampleRequest> requests) {
  const size_t n = requests.size();
  if (n == 0) return std::vector<SampledToken>();
  int m = 0;                // top log-probs per row
  bool any_sorted = false;  // some row reads its whole canonical order (no top-k, or > 1024)
  for (const SampleRequest& r : requests) {
    m = std::max(m, r.params.logprobs);
    any_sorted = any_sorted || kernels::SampleRowNeedsSort(r.params.temperature, r.params.top_k);
  }
  const IoLayout l(n, static_cast<size_t>(m));
  if (l.bytes > pinned_bytes_) {
    RAMI_CUDA_OK(cudaStreamSynchronize(stream_));
    if (pinned_ != nullptr) RAMI_CUDA_OK(cudaFreeHost(pinned_));
    pinned_ = nullptr;
    const size_t capacity = std::max(l.bytes, 2 * pinned_bytes_);
    pinned_bytes_ = 0;  // until the allocation succeeds (a failed one leaves no buffer)
    RAMI_CUDA_OK(cudaMallocHost(&pinned_, capacity));
    pinned_bytes_ = capacity;
  }
  char* host = static_cast<char*>(pinned_);
  for (size_t i = 0; i < n; ++i) {
    const SampleRequest& r = requests[i];
    auto put = [&](size_t offset, const auto& value) {
      std::memcpy(host + offset + i * sizeof(value), &value, sizeof(value));
    };
    put(l.rows, r.row);
    put(l.temperature, r.params.temperature);
    put(l.top_k, r.params.top_k);
    put(l.top_p, r.params.top_p);
    put(l.min_p, r.params.min_p);
    put(l.seed, r.params.seed);
    put(l.index, r.index);
    put(l.num_logprobs, r.params.logprobs);
  }
  RAMI_ASSIGN_OR_RETURN(void* io_ptr, Grow(io_, l.bytes));
  char* io = static_cast<char*>(io_ptr);
  RAMI_ASSIGN_OR_RETURN(void* f32, Grow(f32_, n * static_cast<size_t>(vocab) * 4));
  const size_t workspace_bytes = any_sorted ? kernels::SampleWorkspaceBytes(n, vocab) : 0;
  RAMI_ASSIGN_OR_RETURN(void* workspace, Grow(workspace_, workspace_bytes));
  RAMI_CUDA_OK(cudaMemcpyAsync(io, host, l.results, cudaMemcpyHostToDevice, stream_));
  RAMI_CUDA_OK(kernels::LogitsGatherCuda({.in = logits,
                                          .rows = reinterpret_cast<const int32_t*>(io + l.rows),
                                          .out = static_cast<float*>(f32),
                                          .num_rows = static_cast<int>(n),
                                          .rows_per_rank = rows_per_rank,
                                          .vocab_local = vocab_local,
                                          .world = world,
                                          .vocab = vocab,
                                          .dtype = dtype},
                                         stream_));
  RAMI_CUDA_OK(kernels::SampleCuda(
      {.logits = static_cast<const float*>(f32),
       .logits_row = nullptr,  // output row i reads f32 row i
       .temperature = reinterpret_cast<const float*>(io + l.temperature),
       .top_k = reinterpret_cast<const int32_t*>(io + l.top_k),
       .top_p = reinterpret_cast<const float*>(io + l.top_p),
       .min_p = reinterpret_cast<const float*>(io + l.min_p),
       .seed = reinterpret_cast<const uint64_t*>(io + l.seed),
       .index = reinterpret_cast<const uint64_t*>(io + l.index),
       .num_logprobs = reinterpret_cast<const int32_t*>(io + l.num_logprobs),
       .token = reinterpret_cast<int32_t*>(io + l.token),
       .logprob = reinterpret_cast<float*>(io + l.logprob),
       .top_ids = m > 0 ? reinterpret_cast<int32_t*>(io + l.top_ids) : nullptr,
       .top_logprobs = m > 0 ? reinterpret_cast<float*>(io + l.top_logprobs) : nullptr,
       .rows = static_cast<int>(n),
       .vocab = vocab,
       .max_logprobs = m},
      {.data = workspace, .bytes = workspace_bytes, .any_sorted = any_sorted}, stream_));
  RAMI_CUDA_OK(cudaMemcpyAsync(host + l.results, io + l.results, l.bytes - l.results,
                               cudaMemcpyDeviceToHost, stream_));
  RAMI_CUDA_OK(cudaStreamSynchronize(stream_));
  return SampledTokens(requests, reinterpret_cast<const int32_t*>(host + l.token),
                       reinterpret_cast<const float*>(host + l.logprob),
                       reinterpret_cast<const int32_t*>(host + l.top_ids),
                       reinterpret_cast<const float*>(host + l.top_logprobs), m);
}

}  // namespace rami::cuda
