// Device discovery through the CUDA runtime only (a cudart-only binary starts on machines
// without a driver and gets cudaErrorInsufficientDriver here; docs/contributing.md, toolchain note 4).
#include "kernels/cuda/device.h"

#include <cuda_runtime_api.h>

namespace rami::cuda {
namespace {

// "13.0" from 13000.
std::string VersionText(int version) {
  if (version <= 0) return "none";
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

}  // namespace

DeviceProbe ProbeDevices() {
  DeviceProbe probe;
  cudaDriverGetVersion(&probe.driver_version);
  cudaRuntimeGetVersion(&probe.runtime_version);
  int count = 0;
  if (const cudaError_t error = cudaGetDeviceCount(&count); error != cudaSuccess) {
    probe.error = std::string(cudaGetErrorName(error)) + ": " + cudaGetErrorString(error);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return probe;
  }
  probe.count = count;
  if (count == 0) probe.error = "the runtime reports no device";
  return probe;
}

int DeviceCount() { return ProbeDevices().count; }

std::string DescribeDevices(const DeviceProbe& probe) {
  const std::string versions = "driver " + VersionText(probe.driver_version) + ", runtime " +
                               VersionText(probe.runtime_version);
  if (probe.count == 0) return "no usable CUDA device: " + probe.error + " (" + versions + ")";
  return std::to_string(probe.count) + " CUDA device(s); " + versions;
}

}  // namespace rami::cuda
