// DecodeBenchOptions: what `rami-bench decode` measures (bench_decode.h) and its engine rows
// (bench_engine.h) — filled from flags in bench_main.cc.
#pragma once

#include <map>
#include <utility>
#include <vector>

#include "tools/bench_report.h"

namespace rami::bench {

// Model shape (defaults: Qwen3-8B) and what to measure. Filled from flags in bench_main.cc.
struct DecodeBenchOptions {
  int num_layers = 36;
  int hidden = 4096;
  int num_q_heads = 32;
  int num_kv_heads = 8;
  int head_dim = 128;
  int intermediate = 12288;
  int vocab = 151936;
  std::vector<int> batches = {1, 16, 24, 32, 128, 256};
  std::vector<int> contexts = {4096, 32768};  // tokens per sequence, for attention
  double dms_rate = 7.0 / 8.0;                // synthetic DMS eviction rate
  int dms_window = 512;                       // DMS window W
  int page_size = 16;                         // KV page size in tokens
  double kv_budget_gib = 119.0;  // the equal-memory comparison's KV budget (all layers)
  int iters = 20;                // timed repetitions per measurement, after warm-up
  // Whole decode steps through cuda::CudaModel (tools/bench_engine.h).
  bool engine = true;
  int engine_steps = 20;                   // timed steps per row, after a few warm-up steps
  double engine_memory_utilization = 0.9;  // the memory plan's share of the device's memory
  double engine_budget_s = 100;            // the engine rows stop (saying so) after this long
  // tools/bench_peer.py's figures. The peer's one-layer attention, (context, batch) → ms
  // (PyTorch SDPA over a dense cache); dense rows print peer ms / rami ms when present.
  std::map<std::pair<int, int>, double> peer_attention_ms;
  // The peer's whole decode step, (context, batch) → ms (transformers' Qwen3 decode loop);
  // dense rows print peer step ms / rami step ms when present.
  std::map<std::pair<int, int>, double> peer_step_ms;
  // Rows and summary lines for --json_out and the closing summary (not owned; never null
  // inside RunDecodeBench).
  BenchReport* report = nullptr;
};

}  // namespace rami::bench
