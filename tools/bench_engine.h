// The engine rows of `rami-bench decode`: whole decode steps of a Qwen3-8B-shaped model through
// the CUDA backend (rami::cuda::CudaModel: Reserve + RunReserved, decode steps as CUDA graphs),
// with random bf16 weights made on the device and cache states built through the KvCache API.
#pragma once

#include "tools/bench_options.h"

namespace rami::bench {

// For dense and dms (o.dms_window, synthetic rate o.dms_rate) × o.contexts × o.batches (those
// whose sequences fit in the pool of a memory plan at o.engine_memory_utilization of the device's
// memory): the mean wall clock of RunReserved over o.engine_steps decode steps after warm-up,
// tokens/s, live KV and weight bytes, GB/s and its fraction of `copy_gbs` (the measured copy
// bandwidth), the CUDA graph counters; then dense vs dms at the largest batch each fits at the
// longest context. Stops, saying so, once o.engine_budget_s have passed. Returns 0, or 1 after
// printing the failing call or status.
int RunEngineBench(const DecodeBenchOptions& o, double copy_gbs);

}  // namespace rami::bench
