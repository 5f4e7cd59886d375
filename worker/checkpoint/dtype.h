// DType: the element types a safetensors checkpoint may hold, their names and sizes, and the
// conversions between float32 and the 16-bit float formats (bf16, IEEE fp16).
//
// Checkpoint bytes are little-endian and may sit at any alignment inside a mapped file, so the
// converters read through memcpy and never cast a byte pointer to a wider type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rami::checkpoint {

// Element types a safetensors header may name. kF32/kF16/kBF16 and the two fp8 formats convert
// to float32 (fp8 only through block-scaled loading: see worker/checkpoint/shard_reader.h).
enum class DType {
  kBool,
  kU8,
  kI8,
  kU16,
  kI16,
  kF16,
  kBF16,
  kU32,
  kI32,
  kF32,
  kU64,
  kI64,
  kF64,
  kF8E4M3,
  kF8E5M2,
};

// "F32" → kF32 etc. (the safetensors spelling, case-sensitive); InvalidArgument naming the
// string for a name the format does not define.
absl::StatusOr<DType> ParseDType(std::string_view name);
// The safetensors spelling: kBF16 → "BF16", kF8E4M3 → "F8_E4M3".
std::string_view DTypeName(DType dtype);
// Bytes per element.
size_t DTypeSize(DType dtype);

// Scalar conversions. bf16 is the top half of an f32; fp16 is IEEE binary16. Both widenings are
// exact (subnormals, ±0, ±inf and NaN included).
float BF16ToF32(uint16_t bits);
float F16ToF32(uint16_t bits);
// Narrowings round to nearest, ties to even; overflow gives ±inf, NaN stays a (quiet) NaN with
// its sign, and fp16 produces subnormals below 2^-14.
// fp8 as DeepSeek-V3 and the OCP spec define them: e4m3 "fn" (bias 7, no infinities, S.1111.111
// is NaN, max ±448) and e5m2 (the top byte of an fp16). Exact.
float F8E4M3ToF32(uint8_t bits);
float F8E5M2ToF32(uint8_t bits);
uint16_t F32ToBF16(float value);
uint16_t F32ToF16(float value);

// Converts `count` little-endian elements of `dtype` at `src` (any alignment, count *
// DTypeSize(dtype) bytes) to float32 at `dst` (count floats). F32 is a copy; F16/BF16 and the
// fp8 formats widen. InvalidArgument naming the dtype for anything else.
absl::Status ConvertToF32(DType dtype, const uint8_t* src, size_t count, float* dst);

}  // namespace rami::checkpoint
