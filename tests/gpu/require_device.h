// How a GPU test meets a machine without the devices it needs. It skips — or, under
// RAMI_REQUIRE_GPU=1 (tests/gpu/run.sh sets it), fails with the runtime's reason, so a GPU run
// never passes by skipping everything. A test that needs more devices than the machine has
// skips in both modes saying "needs N CUDA devices", the one skip run.sh accepts.
#pragma once

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"

namespace rami::gpu_test {

inline bool GpuRequired() {
  const char* value = std::getenv("RAMI_REQUIRE_GPU");
  return value != nullptr && std::string(value) == "1";
}

// Why `probe` does not give a test `needed` devices ("" when it does).
inline std::string MissingDevices(const cuda::DeviceProbe& probe, int needed) {
  if (probe.count >= needed) return "";
  std::string why = cuda::DescribeDevices(probe);
  if (needed > 1) {
    why = "needs " + std::to_string(needed) + " CUDA devices, the machine has " +
          std::to_string(probe.count) + (probe.count == 0 ? " (" + why + ")" : "");
  }
  return why;
}

}  // namespace rami::gpu_test

// Skips (or fails, see above) the calling test or void helper unless `n` devices are usable.
#define RAMI_REQUIRE_CUDA_DEVICES(n)                                                \
  do {                                                                              \
    const ::rami::cuda::DeviceProbe rami_probe = ::rami::cuda::ProbeDevices();      \
    const std::string rami_why = ::rami::gpu_test::MissingDevices(rami_probe, (n)); \
    if (rami_why.empty()) break;                                                    \
    if (rami_probe.count == 0 && ::rami::gpu_test::GpuRequired()) {                 \
      FAIL() << rami_why << " (RAMI_REQUIRE_GPU=1: a GPU run must not skip)";       \
    }                                                                               \
    GTEST_SKIP() << rami_why;                                                       \
  } while (0)
#define RAMI_REQUIRE_CUDA_DEVICE() RAMI_REQUIRE_CUDA_DEVICES(1)
