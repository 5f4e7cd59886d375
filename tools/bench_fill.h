// Device-side fills for rami-bench: random weights made on the GPU (no download, no host copy).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace rami::bench {

// data[i] = bf16 of a uniform value in [-scale, scale), a pure function of (seed, i), so every
// run benchmarks the same numbers. data: [count] bf16 bits in device memory.
cudaError_t FillRandomBf16(uint16_t* data, size_t count, uint64_t seed, float scale,
                           cudaStream_t stream);

}  // namespace rami::bench
