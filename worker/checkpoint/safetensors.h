// SafetensorsFile: one memory-mapped .safetensors file, its validated header and tensor bytes.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section; offsets are relative to the start of the data section.
// Open() validates everything before any byte is read through it: header length within the
// file (and at most 100 MiB), well-formed JSON object, known dtype, non-negative shape,
// offsets in range, end - begin == numel * element size, at most kMaxTensors tensors, no
// overlapping ranges, no duplicate names; "__metadata__" must be an object of strings and is
// otherwise ignored. A hostile file gives InvalidArgument naming the file and the tensor; it never
// crashes or reads out of bounds. (A file truncated by another process while mapped can still raise
// SIGBUS: files are assumed not to change while open.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "worker/checkpoint/dtype.h"

namespace rami::checkpoint {

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // empty = scalar
  uint64_t begin = 0;          // byte offset in the data section
  uint64_t nbytes = 0;         // == numel * DTypeSize(dtype)
  int64_t numel() const;       // product of shape (1 for a scalar); Open() rules out overflow
};

// Parses `text` as JSON with the checks nlohmann::json::parse lacks: invalid UTF-8 gets its own
// message, and a duplicate object key (which nlohmann silently collapses to one) is an error.
// Messages start with `source` (a file path). A duplicate key of the top-level object is
// reported as `duplicate <top_level_noun> "key"`. When `top_level_keys` is given it receives the
// top-level object's keys in document order (nlohmann::json itself sorts them).
absl::StatusOr<nlohmann::json> ParseJsonStrict(std::string_view text, std::string_view source,
                                               std::string_view top_level_noun = "key",
                                               std::vector<std::string>* top_level_keys = nullptr);

// A short, printable rendering of an untrusted string for error messages: C-escaped, at most
// ~80 bytes, then "...".
std::string QuoteForError(std::string_view text);

class SafetensorsFile {
 public:
  // Tensors one file may hold: 2^18, ~2.8x DeepSeek-V3's ~92k tensors (fp8 scales included) in
  // all of its 163 shards together, so a real checkpoint never meets it.
  static constexpr int64_t kMaxTensors = int64_t{1} << 18;
  // Maps `path` read-only and validates the header (see file comment).
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensors in header order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent. O(log n).
  const TensorInfo* Find(std::string_view name) const;
  // The tensor's raw little-endian bytes inside the mapping (valid while *this lives; any
  // alignment). `info` must come from tensors()/Find() of this file; otherwise an empty span.
  absl::Span<const uint8_t> Bytes(const TensorInfo& info) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  const uint8_t* map_ = nullptr;  // owned mmap of the whole file
  size_t map_size_ = 0;
  size_t data_start_ = 0;  // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::vector<size_t> by_name_;  // indices into tensors_, sorted by name (for Find)
};

}  // namespace rami::checkpoint
