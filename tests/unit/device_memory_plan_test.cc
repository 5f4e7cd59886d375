// PlanDeviceMemory (worker/engine/device_memory_plan.h): the KV pool gets what the utilization
// of the device's total memory leaves — never more than is free, never the graphs' or the page
// tables' share — and a budget that leaves no page is an error naming every share.
#include "worker/engine/device_memory_plan.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace rami {
namespace {

using engine::DeviceMemoryInputs;
using engine::PlanDeviceMemory;

constexpr int64_t kGiB = int64_t{1} << 30;

// Qwen3-8B in bf16 on one 80 GiB GPU: 16.4 GB of weights, 2 GiB of step buffers, 1 GiB of CUDA
// context, cuBLASLt and NCCL; pages of 16 tokens of K and V (8 KiB a stream).
DeviceMemoryInputs H100Qwen3() {
  const int64_t weights = 16'400'000'000, reserved = 2 * kGiB, other = kGiB;
  return {.total_bytes = 80 * kGiB,
          .free_bytes = 80 * kGiB - weights - reserved - other,
          .weight_bytes = weights,
          .reserved_bytes = reserved,
          .utilization = 0.9,
          .graph_bytes = 512 << 20,
          .page_bytes = 2 * 16 * 128 * 2,
          .table_bytes_per_page = 16 + 4 * 16};
}

TEST(DeviceMemoryPlan, ThePoolTakesWhatTheBudgetLeaves) {
  const DeviceMemoryInputs in = H100Qwen3();
  absl::StatusOr<engine::DeviceMemoryPlan> plan = PlanDeviceMemory(in);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int64_t used = in.total_bytes - in.free_bytes;
  EXPECT_EQ(plan->budget_bytes, static_cast<int64_t>(0.9 * 80 * kGiB));
  EXPECT_EQ(plan->other_bytes, kGiB);
  // Everything fits in the budget, and within one page of it.
  const int64_t all = used + in.graph_bytes + plan->pool_bytes + plan->table_bytes;
  EXPECT_LE(all, plan->budget_bytes);
  EXPECT_GT(all + in.page_bytes + in.table_bytes_per_page, plan->budget_bytes);
  EXPECT_EQ(plan->pool_bytes, plan->pages * in.page_bytes);
  const std::string text = plan->ToString(in);
  EXPECT_NE(text.find("utilization 0.90"), std::string::npos) << text;
  EXPECT_NE(text.find("KV pool"), std::string::npos) << text;
}

// Utilization is a share of the total, as vLLM defines it: a lower one gives a smaller pool by
// exactly the difference, and memory another process holds (less free) shrinks the pool too.
TEST(DeviceMemoryPlan, UtilizationIsAShareOfTheTotalAndFreeMemoryBoundsIt) {
  DeviceMemoryInputs in = H100Qwen3();
  const int64_t at90 = PlanDeviceMemory(in)->pool_bytes;
  in.utilization = 0.8;
  const int64_t at80 = PlanDeviceMemory(in)->pool_bytes;
  const double per_page =
      static_cast<double>(in.page_bytes) / (in.page_bytes + in.table_bytes_per_page);
  EXPECT_NEAR(static_cast<double>(at90 - at80), 0.1 * 80 * kGiB * per_page, 2.0 * in.page_bytes);
  in.utilization = 1.0;
  in.free_bytes -= 20 * kGiB;  // another process took 20 GiB
  const absl::StatusOr<engine::DeviceMemoryPlan> crowded = PlanDeviceMemory(in);
  ASSERT_TRUE(crowded.ok()) << crowded.status();
  EXPECT_LE(crowded->pool_bytes + crowded->table_bytes + in.graph_bytes, in.free_bytes);
}

TEST(DeviceMemoryPlan, NoRoomForAPageIsAnErrorNamingTheShares) {
  DeviceMemoryInputs in = H100Qwen3();
  in.utilization = 0.2;  // 16 GiB: less than the weights
  const absl::StatusOr<engine::DeviceMemoryPlan> plan = PlanDeviceMemory(in);
  ASSERT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted) << plan.status();
  for (const char* share : {"weights", "step buffers", "CUDA graphs", "utilization 0.20"}) {
    EXPECT_NE(plan.status().message().find(share), std::string::npos) << plan.status();
  }
  in.utilization = 1.5;
  EXPECT_EQ(PlanDeviceMemory(in).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rami
