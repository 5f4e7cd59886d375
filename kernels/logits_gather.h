// Logits rows out of a vocab-parallel LM head: out[k, v] = the logit of token v in step row
// rows[k], read from `world` ranks' outputs laid out [world][rows_per_rank][vocab_local] (an
// all-gather's layout; world 1: [rows, vocab]). The gather's transpose and the row selection in
// one pass; columns past `vocab` — the padding of a vocabulary that does not divide the world —
// are dropped. The CPU backend lays out its gathered logits with it; LogitsGatherCuda
// (kernels/cuda/logits_gather.h) reads the compute dtype and writes fp32 for the device sampler.
#pragma once

#include <cstdint>

namespace rami::kernels {

struct LogitsGatherParams {
  const float* in = nullptr;      // [world, rows_per_rank, vocab_local]
  const int32_t* rows = nullptr;  // [num_rows] the step rows to take (each < rows_per_rank)
  float* out = nullptr;           // [num_rows, vocab]
  int num_rows = 0;
  int rows_per_rank = 0;
  int vocab_local = 0;  // columns per rank (the padded shard)
  int world = 1;
  int vocab = 0;  // output columns, ≤ world · vocab_local
};

void LogitsGatherCpu(const LogitsGatherParams& p);

}  // namespace rami::kernels
