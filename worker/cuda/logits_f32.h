// Selected logits rows as full-vocabulary fp32 rows for the device sampler: out[k, v] = the
// logit of token v in step row rows[k], read from the LM head's output of `world` ranks laid out
// [world][rows_per_rank][vocab_local] (the all-gather's layout; world 1: [rows, vocab]) in the
// compute dtype. One pass: the gather's transpose, the row selection and the cast to fp32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::cuda {

struct LogitsToF32Params {
  const void* in = nullptr;       // [world, rows_per_rank, vocab_local] dtype
  const int32_t* rows = nullptr;  // [num_rows] device: the step rows to take
  float* out = nullptr;           // [num_rows, world · vocab_local]
  int num_rows = 0;
  int rows_per_rank = 0;
  int vocab_local = 0;
  int world = 1;
  kernels::DeviceDType dtype = kernels::DeviceDType::kBF16;
};

cudaError_t LogitsToF32Cuda(const LogitsToF32Params& p, cudaStream_t stream);

}  // namespace rami::cuda
