// CUDA device discovery that tolerates machines without a GPU or a driver.
#pragma once

namespace rami::cuda {

// Number of usable CUDA devices; 0 when there is no driver (cudaErrorInsufficientDriver),
// no device, or any other error — callers treat 0 as "no GPU" and skip.
int DeviceCount();

}  // namespace rami::cuda
