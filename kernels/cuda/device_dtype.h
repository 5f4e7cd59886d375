// DeviceDType: the element type of the activations, weights and KV pools a CUDA kernel reads
// and writes. bf16 is the production mode; f32 is the exactness mode (same results as the CPU
// backend up to summation order). Arithmetic is always fp32 (softmax and norms included).
#pragma once

#include <cstdint>

namespace rami::kernels {

enum class DeviceDType : uint8_t {
  kF32,
  kBF16,
};

inline int DeviceDTypeSize(DeviceDType dtype) {
  switch (dtype) {
    case DeviceDType::kF32:
      return 4;
    case DeviceDType::kBF16:
      return 2;
  }
  return 0;
}

}  // namespace rami::kernels
