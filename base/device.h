// Device and ComputeDType: where a worker shard runs and in which precision — plain C++ from the
// flag or request that names them to the backend that uses them (the worker proto carries them
// as enums; DeviceName / ParseDevice are the only text forms).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace rami {

enum class DeviceKind { kCpu, kCuda };

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;  // CUDA ordinal (0 on the CPU)

  bool is_cuda() const { return kind == DeviceKind::kCuda; }
  friend bool operator==(const Device&, const Device&) = default;
};

// "cpu", "cuda:3"
inline std::string DeviceName(const Device& d) {
  switch (d.kind) {
    case DeviceKind::kCpu:
      return "cpu";
    case DeviceKind::kCuda:
      return absl::StrCat("cuda:", d.index);
  }
  return "unknown";
}

// "cpu" (or empty), "cuda" (= cuda:0) or "cuda:<n>"; InvalidArgument naming the text otherwise.
inline absl::StatusOr<Device> ParseDevice(absl::string_view text) {
  if (text.empty() || text == "cpu") return Device{};
  if (text == "cuda") return Device{.kind = DeviceKind::kCuda, .index = 0};
  int index = -1;
  if (text.substr(0, 5) == "cuda:" && absl::SimpleAtoi(text.substr(5), &index) && index >= 0 &&
      index < 1024) {
    return Device{.kind = DeviceKind::kCuda, .index = index};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("device: expected cpu, cuda or cuda:<n>, found \"", text, "\""));
}

// The precision a shard's weights and GEMMs use (accumulation is fp32 in both). kDefault: the
// device's own — fp32 on the CPU (its only one), bf16 on CUDA.
enum class ComputeDType { kDefault, kFp32, kBf16 };

inline absl::string_view ComputeDTypeName(ComputeDType t) {
  switch (t) {
    case ComputeDType::kDefault:
      return "default";
    case ComputeDType::kFp32:
      return "fp32";
    case ComputeDType::kBf16:
      return "bf16";
  }
  return "unknown";
}

// "" (or "default"), "fp32" or "bf16".
inline absl::StatusOr<ComputeDType> ParseComputeDType(absl::string_view text) {
  if (text.empty() || text == "default") return ComputeDType::kDefault;
  if (text == "fp32") return ComputeDType::kFp32;
  if (text == "bf16") return ComputeDType::kBf16;
  return absl::InvalidArgumentError(absl::StrCat(
      "dtype: expected fp32 or bf16 (or empty: the device's default), found \"", text, "\""));
}

// The dtype a shard on `device` computes in: kDefault resolved; InvalidArgument when the device
// cannot (the CPU backend computes in fp32 only).
inline absl::StatusOr<ComputeDType> ResolveComputeDType(const Device& device, ComputeDType t) {
  if (t == ComputeDType::kDefault) {
    return device.is_cuda() ? ComputeDType::kBf16 : ComputeDType::kFp32;
  }
  if (t == ComputeDType::kBf16 && !device.is_cuda()) {
    return absl::InvalidArgumentError(
        "dtype: bf16 needs a CUDA device (the CPU backend computes in fp32)");
  }
  return t;
}

}  // namespace rami
