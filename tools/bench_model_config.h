// The benchmarks' model: a Qwen3 of the options' shape (Qwen3-8B's config.json by default), with
// the DMS retrofit's keys when asked, as nvidia/Qwen3-8B-DMS-8x has them. Host-only: shared by
// the GPU engine rows (bench_engine.h) and `rami-bench host-step` (bench_host_step.h).
#pragma once

#include "absl/status/statusor.h"
#include "tools/bench_options.h"
#include "worker/checkpoint/model_config.h"

namespace rami::bench {

// `longest_context`: the longest sequence the benchmark builds (max_position_embeddings covers
// it); `dms`: borrowed-neuron decisions, window o.dms_window.
absl::StatusOr<checkpoint::ModelConfig> BenchModelConfig(const DecodeBenchOptions& o,
                                                         int longest_context, bool dms);

}  // namespace rami::bench
