// DeviceMemoryPlan: how a device backend divides its GPU's memory — the KV pool gets what is left
// of gpu_memory_utilization · total (vLLM's definition: a fraction of the device's total memory,
// not of what happens to be free) once everything else a shard needs at its largest step is
// counted: the weights, cuBLASLt's workspace and NCCL's buffers (already allocated: total − free),
// the step's activation buffers and the device sampler's (reserved before the plan, at the
// largest step the shard accepts), CUDA graphs (an estimate kept free) and the device page
// tables, which grow with the pool (a per-page headroom). Host-only arithmetic, tested on CPU;
// the CUDA backend measures the inputs and prints the plan at load.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace rami::engine {

struct DeviceMemoryInputs {
  int64_t total_bytes = 0;           // the device's memory (cudaMemGetInfo total)
  int64_t free_bytes = 0;            // free now: after weights, workspaces, NCCL and reservations
  int64_t weight_bytes = 0;          // of which the weights (for the printout)
  int64_t reserved_bytes = 0;        // of which the step's activations and the sampler (printout)
  double utilization = 0.9;          // (0, 1]: the share of total_bytes the process may use
  int64_t graph_bytes = 0;           // kept free for CUDA graphs (0 without graphs)
  int64_t page_bytes = 0;            // one KV page (K and V, or K only) in the compute dtype
  int64_t table_bytes_per_page = 0;  // device page tables' growth per pool page
};

struct DeviceMemoryPlan {
  int64_t pages = 0;         // KV pages in the pool
  int64_t pool_bytes = 0;    // pages · page_bytes
  int64_t table_bytes = 0;   // kept free for the device page tables
  int64_t budget_bytes = 0;  // utilization · total
  int64_t other_bytes = 0;   // used before the plan but neither weights nor reservations
  std::string ToString(const DeviceMemoryInputs& in) const;
};

// ResourceExhausted, naming every share, when the budget leaves no room for one page.
absl::StatusOr<DeviceMemoryPlan> PlanDeviceMemory(const DeviceMemoryInputs& in);

}  // namespace rami::engine
