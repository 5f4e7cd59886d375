// PlanDeviceMemory: budget − (already used) − graphs, divided over pages and their table headroom.
#include "worker/engine/device_memory_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rami::engine {
namespace {

double GiB(int64_t bytes) { return static_cast<double>(bytes) / (1 << 30); }

}  // namespace

std::string DeviceMemoryPlan::ToString(const DeviceMemoryInputs& in) const {
  return absl::StrFormat(
      "memory plan: %.2f GiB total, budget %.2f GiB (utilization %.2f): weights %.2f GiB, step "
      "buffers and sampler %.2f GiB, CUDA context, cuBLASLt and NCCL %.2f GiB, CUDA graphs %.2f "
      "GiB, page tables %.2f GiB, KV pool %.2f GiB = %lld pages of %lld bytes",
      GiB(in.total_bytes), GiB(budget_bytes), in.utilization, GiB(in.weight_bytes),
      GiB(in.reserved_bytes), GiB(other_bytes), GiB(in.graph_bytes), GiB(table_bytes),
      GiB(pool_bytes), static_cast<long long>(pages), static_cast<long long>(in.page_bytes));
}

absl::StatusOr<DeviceMemoryPlan> PlanDeviceMemory(const DeviceMemoryInputs& in) {
  if (!(in.utilization > 0 && in.utilization <= 1) || in.total_bytes <= 0 || in.page_bytes <= 0 ||
      in.free_bytes < 0 || in.free_bytes > in.total_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "memory plan: utilization %.3f, total %lld, free %lld, page %lld bytes", in.utilization,
        static_cast<long long>(in.total_bytes), static_cast<long long>(in.free_bytes),
        static_cast<long long>(in.page_bytes)));
  }
  DeviceMemoryPlan plan;
  plan.budget_bytes = static_cast<int64_t>(in.utilization * static_cast<double>(in.total_bytes));
  const int64_t used = in.total_bytes - in.free_bytes;
  plan.other_bytes = std::max<int64_t>(0, used - in.weight_bytes - in.reserved_bytes);
  // The pool and its tables fit in what the budget leaves, and in what is actually free.
  const int64_t left =
      std::min(plan.budget_bytes - used, in.free_bytes) - std::max<int64_t>(in.graph_bytes, 0);
  const int64_t per_page = in.page_bytes + std::max<int64_t>(in.table_bytes_per_page, 0);
  plan.pages = left > 0 ? left / per_page : 0;
  if (plan.pages < 1) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no room for the KV pool: ", plan.ToString(in),
                     " — raise the utilization, lower the largest step (max_step_tokens, "
                     "max_step_sequences), or use more GPUs (tensor parallelism)"));
  }
  plan.pool_bytes = plan.pages * in.page_bytes;
  plan.table_bytes = plan.pages * in.table_bytes_per_page;
  return plan;
}

}  // namespace rami::engine
