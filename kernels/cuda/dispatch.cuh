// Shared device helpers of the CUDA kernels: element load/store in fp32 for each DeviceDType,
// warp/block reductions, and the dispatch macros that turn a runtime dtype or head_dim into a
// template argument (template only what matters, one macro family, an error that
// names an unsupported value). Included by .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::kernels::cuda_detail {

// Element ↔ fp32. bf16 stores round to nearest even (the same rounding as the host's
// F32ToBF16, so a test can reproduce a stored value exactly).
__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Loads 16 bytes (E = 16 / sizeof(T) elements, 16-byte aligned) as fp32.
template <typename T>
__device__ __forceinline__ void LoadVec16(const T* ptr, float (&out)[16 / sizeof(T)]) {
  const uint4 word = *reinterpret_cast<const uint4*>(ptr);
  if constexpr (sizeof(T) == 4) {
    out[0] = __uint_as_float(word.x);
    out[1] = __uint_as_float(word.y);
    out[2] = __uint_as_float(word.z);
    out[3] = __uint_as_float(word.w);
  } else {
    const uint32_t words[4] = {word.x, word.y, word.z, word.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      // bf16 is the top half of an fp32: widening is a shift.
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ double WarpSum(double v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int offset = 16; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, ≤ 1024); every thread gets the result.
// `scratch` holds 32 values; the call synchronises twice, so it may be reused right after.
template <typename V>
__device__ __forceinline__ V BlockSum(V v, V* scratch) {
  v = WarpSum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  V total = lane < static_cast<int>(blockDim.x / 32) ? scratch[lane] : V(0);
  total = WarpSum(total);
  __syncthreads();  // scratch is free again
  return total;
}

__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  v = WarpMax(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = lane < static_cast<int>(blockDim.x / 32) ? scratch[lane] : -INFINITY;
  total = WarpMax(total);
  __syncthreads();
  return total;
}

}  // namespace rami::kernels::cuda_detail

// RAMI_DISPATCH_DTYPE(dtype, T, ...): runs the body with T = float or __nv_bfloat16.
#define RAMI_DISPATCH_DTYPE(dtype, T, ...)            \
  [&]() -> cudaError_t {                              \
    switch (dtype) {                                  \
      case ::rami::kernels::DeviceDType::kF32: {      \
        using T = float;                              \
        return __VA_ARGS__();                         \
      }                                               \
      case ::rami::kernels::DeviceDType::kBF16: {     \
        using T = __nv_bfloat16;                      \
        return __VA_ARGS__();                         \
      }                                               \
    }                                                 \
    return cudaErrorInvalidValue; /* unknown dtype */ \
  }()

// RAMI_DISPATCH_HEAD_DIM(head_dim, D, ...): runs the body with constexpr D = 64 or 128; any
// other head_dim is cudaErrorInvalidValue (the op boundary rejects it with its name first).
#define RAMI_DISPATCH_HEAD_DIM(head_dim, D, ...) \
  [&]() -> cudaError_t {                         \
    switch (head_dim) {                          \
      case 64: {                                 \
        constexpr int D = 64;                    \
        return __VA_ARGS__();                    \
      }                                          \
      case 128: {                                \
        constexpr int D = 128;                   \
        return __VA_ARGS__();                    \
      }                                          \
      default:                                   \
        return cudaErrorInvalidValue;            \
    }                                            \
  }()
