// CUDA device discovery that tolerates machines without a GPU or a driver.
#pragma once

#include <string>

namespace rami::cuda {

// What the CUDA runtime says about this machine's devices.
struct DeviceProbe {
  int count = 0;            // usable devices; 0 on any error
  std::string error;        // empty, or why there are none ("cudaErrorInsufficientDriver: ...")
  int driver_version = 0;   // cudaDriverGetVersion (e.g. 12040), 0 without a driver
  int runtime_version = 0;  // cudaRuntimeGetVersion, the toolkit rami was built with
};
DeviceProbe ProbeDevices();

// Number of usable CUDA devices; 0 when there is no driver (cudaErrorInsufficientDriver),
// no device, or any other error — callers treat 0 as "no GPU" and skip. ProbeDevices() says why.
int DeviceCount();

// One line for logs: "1 CUDA device(s); driver 13.0, runtime 13.0" or
// "no usable CUDA device: cudaErrorInsufficientDriver: ... (driver 12.4, runtime 13.0)".
std::string DescribeDevices(const DeviceProbe& probe);

}  // namespace rami::cuda
