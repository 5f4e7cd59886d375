// SafetensorsFile: one memory-mapped .safetensors file, its validated header and tensor bytes.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section; offsets are relative to the start of the data section.
// Open() validates everything before any byte is read through it: header length within the
// file (and at most 100 MiB), well-formed JSON object, known dtype, non-negative shape,
// offsets in range, end - begin == numel * element size, no overlapping ranges, no duplicate
// names. A hostile file gives an error naming the file and the tensor; it never crashes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace rami {

// Element types a safetensors header may name. Only kF32/kF16/kBF16 convert to float32 today.
enum class DType {
  kBool, kU8, kI8, kU16, kI16, kF16, kBF16, kU32, kI32, kF32, kU64, kI64, kF64,
  kF8E4M3, kF8E5M2,
};

// "F32" → kF32 etc.; InvalidArgument for a name the format does not define.
absl::StatusOr<DType> ParseDType(std::string_view name);
std::string_view DTypeName(DType dtype);
size_t DTypeSize(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // empty = scalar
  uint64_t begin = 0;          // byte offset in the data section
  uint64_t nbytes = 0;         // == numel * DTypeSize(dtype)
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and validates the header (see file comment).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensors in header order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* Find(std::string_view name) const;
  // The tensor's raw little-endian bytes inside the mapping (valid while *this lives).
  absl::Span<const uint8_t> Bytes(const TensorInfo& info) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* map_ = nullptr;  // owned mmap of the whole file
  size_t map_size_ = 0;
  size_t data_start_ = 0;         // 8 + header length
  std::vector<TensorInfo> tensors_;
};

}  // namespace rami
