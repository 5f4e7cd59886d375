// DType names, sizes and float conversions (see dtype.h).
#include "worker/checkpoint/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace rami::checkpoint {
namespace {

// Checkpoints are little-endian; the converters copy bytes straight into host integers.
static_assert(std::endian::native == std::endian::little, "rami assumes a little-endian host");

// Debian's Abseil has its own absl::string_view with no conversion from std::string_view
// (docs/contributing.md, toolchain note 7); StrCat and CHexEscape need it.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Every enumerator, for ParseDType's search (DTypeName's switch catches a missing name).
constexpr DType kAllDTypes[] = {
    DType::kBool, DType::kU8,   DType::kI8,  DType::kU16,    DType::kI16,
    DType::kF16,  DType::kBF16, DType::kU32, DType::kI32,    DType::kF32,
    DType::kU64,  DType::kI64,  DType::kF64, DType::kF8E4M3, DType::kF8E5M2,
};

uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

}  // namespace

absl::StatusOr<DType> ParseDType(std::string_view name) {
  for (DType dtype : kAllDTypes) {
    if (DTypeName(dtype) == name) return dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown dtype \"", absl::CHexEscape(Sv(name.substr(0, 32))), name.size() > 32 ? "..." : "",
      "\"; expected one of BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, "
      "I64, F64, F8_E4M3, F8_E5M2"));
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBool:
      return "BOOL";
    case DType::kU8:
      return "U8";
    case DType::kI8:
      return "I8";
    case DType::kU16:
      return "U16";
    case DType::kI16:
      return "I16";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kU32:
      return "U32";
    case DType::kI32:
      return "I32";
    case DType::kF32:
      return "F32";
    case DType::kU64:
      return "U64";
    case DType::kI64:
      return "I64";
    case DType::kF64:
      return "F64";
    case DType::kF8E4M3:
      return "F8_E4M3";
    case DType::kF8E5M2:
      return "F8_E5M2";
  }
  return "?";  // unreachable for a valid enumerator
}

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kBool:
    case DType::kU8:
    case DType::kI8:
    case DType::kF8E4M3:
    case DType::kF8E5M2:
      return 1;
    case DType::kU16:
    case DType::kI16:
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kU32:
    case DType::kI32:
    case DType::kF32:
      return 4;
    case DType::kU64:
    case DType::kI64:
    case DType::kF64:
      return 8;
  }
  return 0;  // unreachable for a valid enumerator
}

float BF16ToF32(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

float F16ToF32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float32 (2^-24 is a power of two).
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) {
    // Inf (mantissa 0) or NaN; the payload moves to the top of the f32 mantissa.
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  }
  return std::bit_cast<float>(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

float F8E4M3ToF32(uint8_t bits) {
  const bool negative = (bits & 0x80u) != 0;
  const int exponent = (bits >> 3) & 0xf;
  const int mantissa = bits & 0x7;
  float magnitude;
  if (exponent == 0xf && mantissa == 0x7) {
    magnitude = std::numeric_limits<float>::quiet_NaN();  // the only NaN; no infinities
  } else if (exponent == 0) {
    magnitude = static_cast<float>(mantissa) * 0x1p-9f;  // subnormal: m · 2^(1-7-3)
  } else {
    magnitude = std::ldexp(static_cast<float>(8 + mantissa), exponent - 7 - 3);
  }
  return negative ? -magnitude : magnitude;
}

float F8E5M2ToF32(uint8_t bits) { return F16ToF32(static_cast<uint16_t>(bits) << 8); }

uint16_t F32ToBF16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    // NaN: truncating could clear every mantissa bit (giving inf), so force the quiet bit.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  // Round to nearest even: add 0x7fff plus the lowest kept bit; a carry into the exponent is
  // the correct rounding (and turns the largest finite values into inf).
  const uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

uint16_t F32ToF16(float value) {
  // After F. Giesen's float_to_half_fast3_rtne: relies on float addition rounding to nearest
  // even (the default mode) for the subnormal range.
  constexpr uint32_t kF32Inf = 255u << 23;
  constexpr uint32_t kF16Overflow = (127u + 16) << 23;  // 2^16: everything above rounds to inf
  constexpr uint32_t kF16MinNormal = 113u << 23;        // 2^-14
  constexpr uint32_t kDenormMagic = ((127u - 15) + (23 - 10) + 1) << 23;  // 0.5f

  uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint32_t out;
  if (bits >= kF16Overflow) {
    out = bits > kF32Inf ? 0x7e00u : 0x7c00u;  // NaN → quiet NaN, else inf
  } else if (bits < kF16MinNormal) {
    // Adding 0.5 aligns the fp16 subnormal grid to the low float mantissa bits; the float add
    // does the rounding.
    const float sum = std::bit_cast<float>(bits) + std::bit_cast<float>(kDenormMagic);
    out = std::bit_cast<uint32_t>(sum) - kDenormMagic;
  } else {
    const uint32_t mantissa_odd = (bits >> 13) & 1u;
    bits += (static_cast<uint32_t>(15 - 127) << 23) + 0xfffu + mantissa_odd;  // rebias + round
    out = bits >> 13;
  }
  return static_cast<uint16_t>(out | (sign >> 16));
}

absl::Status ConvertToF32(DType dtype, const uint8_t* src, size_t count, float* dst) {
  switch (dtype) {
    case DType::kF32:
      if (count > 0) std::memcpy(dst, src, count * sizeof(float));
      return absl::OkStatus();
    case DType::kF16:
      for (size_t i = 0; i < count; ++i) dst[i] = F16ToF32(Load16(src + 2 * i));
      return absl::OkStatus();
    case DType::kBF16:
      for (size_t i = 0; i < count; ++i) dst[i] = BF16ToF32(Load16(src + 2 * i));
      return absl::OkStatus();
    case DType::kF8E4M3:
      for (size_t i = 0; i < count; ++i) dst[i] = F8E4M3ToF32(src[i]);
      return absl::OkStatus();
    case DType::kF8E5M2:
      for (size_t i = 0; i < count; ++i) dst[i] = F8E5M2ToF32(src[i]);
      return absl::OkStatus();
    case DType::kBool:
    case DType::kU8:
    case DType::kI8:
    case DType::kU16:
    case DType::kI16:
    case DType::kU32:
    case DType::kI32:
    case DType::kU64:
    case DType::kI64:
    case DType::kF64:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("cannot convert dtype ", Sv(DTypeName(dtype)),
                                                 " to F32; expected F32, F16, BF16 or fp8"));
}

}  // namespace rami::checkpoint
