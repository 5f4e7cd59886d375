// CUDA runtime errors as absl::Status for the worker's CUDA backend: an allocation failure is
// RESOURCE_EXHAUSTED (a smaller pool or batch may fit), anything else INTERNAL; the message
// names what failed.
#pragma once

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"

namespace rami::cuda {

inline absl::Status CudaStatus(cudaError_t e, absl::string_view what) {
  if (e == cudaSuccess) return absl::OkStatus();
  const absl::StatusCode code = e == cudaErrorMemoryAllocation
                                    ? absl::StatusCode::kResourceExhausted
                                    : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat("CUDA: ", what, ": ", cudaGetErrorString(e)));
}

}  // namespace rami::cuda

// Returns from the enclosing function when a CUDA runtime call fails.
#define RAMI_CUDA_OK(call) RAMI_RETURN_IF_ERROR(::rami::cuda::CudaStatus((call), #call))
