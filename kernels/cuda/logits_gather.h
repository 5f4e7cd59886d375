// LogitsGatherCuda: kernels/logits_gather.h on the device — the LM head's output of `world`
// ranks in the compute dtype to full-vocabulary fp32 rows for the device sampler, in one pass
// (the all-gather's transpose, the row selection, the cast; padding columns dropped).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::kernels {

struct LogitsGatherCudaParams {
  const void* in = nullptr;       // [world, rows_per_rank, vocab_local] dtype
  const int32_t* rows = nullptr;  // [num_rows] device: the step rows to take
  float* out = nullptr;           // [num_rows, vocab]
  int num_rows = 0;
  int rows_per_rank = 0;
  int vocab_local = 0;
  int world = 1;
  int vocab = 0;  // ≤ world · vocab_local
  DeviceDType dtype = DeviceDType::kBF16;
};

cudaError_t LogitsGatherCuda(const LogitsGatherCudaParams& p, cudaStream_t stream);

}  // namespace rami::kernels
