// `rami-bench decode`: one decode step of a Qwen3-8B-shaped model on one GPU, with random bf16
// weights made on the device. Built only with CUDA (tools/CMakeLists.txt).
#pragma once

#include "tools/bench_options.h"

namespace rami::bench {

// Prints the machine and the HBM copy bandwidth; per batch size the step's GEMMs (the 7
// projections of every layer + the LM head) through CublasLtGemm; per context, policy (dense,
// dms) and batch one layer's decode attention and the step estimate (GEMMs + layers x
// attention); and dense vs dms at equal KV memory. Each row: time, bytes, GB/s and the fraction
// of the copy bandwidth. Then, with `engine`, whole decode steps through the CUDA backend
// (tools/bench_engine.h). Without a CUDA device it says so and returns 0 (or 1 when
// `require_gpu`); returns 1 when a CUDA, cuBLASLt or engine call fails.
int RunDecodeBench(const DecodeBenchOptions& options, bool require_gpu);

}  // namespace rami::bench
