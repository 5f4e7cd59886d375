// `rami-bench host-step`: the host cost of a CUDA step, measured on any machine. The real Engine
// (validation, reservation, sampling bookkeeping, the cache report) drives a backend that is the
// CUDA backend's host side itself — engine::CudaStepHost: the device tables' delta, the copy log,
// the packed plan, the decisions into the host flags, the commit — over a StepDevice whose
// "device" is host memory: the deltas scattered into a host replica of the tables
// (KvTablesHost::Apply, the twin of the device update), the plan copied into a host buffer, and a
// forward pass that only hands back synthetic decisions (rate o.shape.dms_rate) and sampled
// tokens. The device calls are timed apart and left out of the host figures.
//
// Rows: a Qwen3-8B-shaped model (o.shape) at each tensor-parallel size (one rank's shard: its KV
// heads), cache policy (dms at o.shape.dms_window; window with 4 sinks and context/8 recent
// tokens; dense), context and batch (those whose sequences fit a pool of o.shape.kv_budget_gib
// per GPU); plus a mixed row per (TP, policy, context): the largest fitting batch decoding while
// a new sequence prefills one chunk of o.mixed_prefill tokens. The sequences are a root prefilled
// to `context` through the Engine (chunks of 2,048, synthetic decisions) and forked into the
// batch, so every branch holds the root's cache state; then decode steps.
//
// Each row: microseconds per step by phase, the roofline step time of that row on an H200
// (max(weight bytes / bandwidth, FLOPs / peak) + live KV bytes / bandwidth; 4.8 TB/s and 989
// TFLOP/s bf16 dense; tensor-parallel all-reduces not counted), and host / roofline.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "tools/bench_options.h"

namespace rami::bench {

struct HostStepOptions {
  DecodeBenchOptions shape;  // model shape, page size, dms window and rate, pool budget
  std::vector<int> tps = {1, 8};
  std::vector<std::string> policies = {"dms", "window", "dense"};
  std::vector<int> contexts = {4096, 32768};
  std::vector<int> batches = {1, 16, 64, 128, 256};
  int steps = 20;              // timed steps per row, after 3 warm-up steps
  int mixed_prefill = 2048;    // the mixed row's prefill chunk (0: no mixed rows)
  double bandwidth = 4.8e12;   // H200 HBM3e, bytes/s
  double peak_flops = 989e12;  // H200 bf16 dense tensor cores, FLOP/s
};

struct HostStepRow {
  int tp = 1;
  std::string policy;
  int context = 0;
  int batch = 0;             // decoding sequences
  int prefill = 0;           // tokens of the mixed row's prefill chunk (0: decode only)
  double reserve_us = 0;     // ModelShape::Reserve: validation and KvCache::ReserveAppend
  double tables_us = 0;      // DeviceKvTables::Sync and ExpectDeviceFlags
  double copies_us = 0;      // KvCopyBatches
  double plan_us = 0;        // PlanCudaStep, padding, layout, packing
  double results_us = 0;     // the decisions into the host flags
  double commit_us = 0;      // KvCache::CommitAppend
  double engine_us = 0;      // the rest of Engine::Execute: plan checks, sampling, the report
  double host_us = 0;        // all of the above
  double device_us = 0;      // the fake device's calls (not host work; for reference)
  double table_writes = 0;   // delta entries per step (page entries, fields, flags)
  double weight_bytes = 0;   // one rank's weights read per step
  double flops = 0;          // one rank's FLOPs per step
  double live_kv_bytes = 0;  // one rank's live K/V bytes read per step
  double roofline_us = 0;
  double ratio = 0;  // host_us / roofline_us
};

struct HostStepReport {
  std::vector<HostStepRow> rows;
  std::vector<std::string> notes;  // rows skipped (do not fit) and why
};

absl::StatusOr<HostStepReport> RunHostStepBench(const HostStepOptions& o);
std::string HostStepText(const HostStepOptions& o, const HostStepReport& report);
nlohmann::json HostStepJson(const HostStepOptions& o, const HostStepReport& report);

}  // namespace rami::bench
