// Device discovery through the CUDA runtime only (a cudart-only binary starts on machines
// without a driver and gets cudaErrorInsufficientDriver here; build-notes trap 4).
#include "kernels/cuda/device.h"

#include <cuda_runtime_api.h>

namespace rami::cuda {

int DeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return 0;
  }
  return count;
}

}  // namespace rami::cuda
