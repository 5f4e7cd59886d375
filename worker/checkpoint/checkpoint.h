// Checkpoint: a Hugging Face model directory — config.json plus model.safetensors, or shards
// listed by model.safetensors.index.json — and typed, sliced reads of its tensors in float32.
//
// Every error names the directory or file, the tensor, and what was expected vs found.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "worker/checkpoint/safetensors.h"

namespace rami::checkpoint {

// A contiguous range along one dimension of a tensor (tensor-parallel slicing at load time).
// dim < 0 means the whole tensor.
struct TensorSlice {
  int dim = -1;
  int64_t start = 0;
  int64_t length = 0;
};

class Checkpoint {
 public:
  // Parses dir/config.json (NotFound when missing; InvalidArgument unless a JSON object), then
  // opens dir/model.safetensors or, when dir/model.safetensors.index.json exists, every shard
  // its weight_map names. Shard names must be plain file names inside dir (no '/' or '..'); a
  // tensor listed in the index must be in that shard; a tensor present in two shards, or in a
  // shard but not in the index, is an error. NotFound naming dir and both file names when
  // neither exists. Duplicate JSON keys are errors in every file.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  // All tensor names, sorted.
  std::vector<std::string> TensorNames() const;
  bool Has(std::string_view name) const;
  // nullptr when absent.
  const TensorInfo* Info(std::string_view name) const;

  // Reads tensor `name`, checks that its shape equals `expected_shape` exactly, converts
  // F32/F16/BF16 to float32 and returns the elements of `slice` in row-major order (shape of
  // the result: expected_shape with slice.dim replaced by slice.length).
  // NotFound when absent; InvalidArgument for a shape mismatch, an out-of-range slice or a
  // dtype that does not convert (message names file, tensor, expected and found).
  // `allow_fp8`: also widen F8_E4M3/F8_E5M2 elements (unscaled: the caller applies the
  // block scales, worker/checkpoint/shard_reader.h).
  absl::StatusOr<std::vector<float>> ReadF32(std::string_view name,
                                             const std::vector<int64_t>& expected_shape,
                                             const TensorSlice& slice = {},
                                             bool allow_fp8 = false) const;

 private:
  std::string dir_;
  nlohmann::json config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  // name → (file index, tensor) ; filled by Open.
  struct Entry {
    const SafetensorsFile* file;
    const TensorInfo* info;
  };
  std::vector<std::pair<std::string, Entry>> index_;  // sorted by name
  const Entry* FindEntry(std::string_view name) const;
};

}  // namespace rami::checkpoint
