// Helpers of the GPU tests: device buffers, garbage first contents for the buffers a kernel
// must fill, bf16 rounding on the host (round to nearest even, the rounding of
// __float2bfloat16_rn), the bf16 tolerance of the CUDA backend, cosine distance for long
// reductions, and the check of a result against its CPU twin with both.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "gtest/gtest.h"
#include "kernels/cuda/device_dtype.h"
#include "tests/testing/compare.h"

namespace rami::gpu_test {

// A device copy of a host vector; freed on scope exit.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : count_(host.size()) {
    EXPECT_EQ(cudaMalloc(&ptr_, sizeof(T) * std::max<size_t>(count_, 1)), cudaSuccess);
    if (count_ > 0) {
      EXPECT_EQ(cudaMemcpy(ptr_, host.data(), sizeof(T) * count_, cudaMemcpyHostToDevice),
                cudaSuccess);
    }
  }
  explicit DeviceArray(size_t count) : DeviceArray(std::vector<T>(count)) {}
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(ptr_); }

  T* get() const { return static_cast<T*>(ptr_); }
  std::vector<T> ToHost() const {
    std::vector<T> host(count_);
    if (count_ > 0) {
      EXPECT_EQ(cudaMemcpy(host.data(), ptr_, sizeof(T) * count_, cudaMemcpyDeviceToHost),
                cudaSuccess);
    }
    return host;
  }

 private:
  void* ptr_ = nullptr;
  size_t count_;
};

// First contents of output and workspace buffers: garbage (a large finite value in every
// element, as a replayed graph's buffers hold the last step's values), so every element a test
// reads — padding rows, empty splits' lse — must have been written by the kernel.
template <typename T>
std::vector<T> Garbage(size_t count) {
  if constexpr (sizeof(T) == 1) {
    return std::vector<T>(count, 0x7f);  // bf16 0x7f7f, fp32 0x7f7f7f7f: ~3.4e38
  } else {
    return std::vector<T>(count, static_cast<T>(3.0e30));
  }
}

inline uint16_t ToBf16Bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}
inline float FromBf16Bits(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}
inline float RoundBf16(float x) { return FromBf16Bits(ToBf16Bits(x)); }

// Host values in the element type of `dtype`, as raw bytes (fp32 copied, bf16 rounded).
inline std::vector<uint8_t> Encode(const std::vector<float>& values, kernels::DeviceDType dtype) {
  std::vector<uint8_t> bytes(values.size() * kernels::DeviceDTypeSize(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == kernels::DeviceDType::kF32) {
      std::memcpy(bytes.data() + 4 * i, &values[i], 4);
    } else {
      const uint16_t b = ToBf16Bits(values[i]);
      std::memcpy(bytes.data() + 2 * i, &b, 2);
    }
  }
  return bytes;
}
inline std::vector<float> Decode(const std::vector<uint8_t>& bytes, kernels::DeviceDType dtype) {
  const size_t n = bytes.size() / kernels::DeviceDTypeSize(dtype);
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) {
    if (dtype == kernels::DeviceDType::kF32) {
      std::memcpy(&values[i], bytes.data() + 4 * i, 4);
    } else {
      uint16_t b;
      std::memcpy(&b, bytes.data() + 2 * i, 2);
      values[i] = FromBf16Bits(b);
    }
  }
  return values;
}
// Values as the device holds them: rounded to bf16 in bf16 mode, unchanged in fp32 mode.
inline std::vector<float> Quantize(std::vector<float> values, kernels::DeviceDType dtype) {
  if (dtype == kernels::DeviceDType::kBF16) {
    for (float& v : values) v = RoundBf16(v);
  }
  return values;
}

inline const char* Name(kernels::DeviceDType dtype) {
  return dtype == kernels::DeviceDType::kF32 ? "f32" : "bf16";
}

// The bf16 tolerance (|a − b| ≤ 1e-2 + 2e-2·|b|), and a tight one for fp32 mode.
inline testing::Tolerance ToleranceFor(kernels::DeviceDType dtype) {
  if (dtype == kernels::DeviceDType::kBF16) return {.atol = 1e-2, .rtol = 2e-2};
  return {.atol = 2e-5, .rtol = 1e-4};
}

inline double CosineDistance(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  if (na == 0 || nb == 0) return na == nb ? 0.0 : 1.0;
  return 1.0 - dot / std::sqrt(na * nb);
}

// `got` against its CPU twin's `expected`: every element within ToleranceFor(dtype) and the
// cosine distance < 1e-5. `what` names the case in the failure messages.
inline void ExpectClose(const std::vector<float>& got, const std::vector<float>& expected,
                        kernels::DeviceDType dtype, const std::string& what) {
  EXPECT_TRUE(testing::AllClose(got, expected, ToleranceFor(dtype), what));
  EXPECT_LT(CosineDistance(got, expected), 1e-5) << what;
}

}  // namespace rami::gpu_test
