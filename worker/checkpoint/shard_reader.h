// ShardReader: reads one rank's slices of a checkpoint's tensors in float32, dequantizing
// block-scaled fp8 weights (DeepSeek-V3: `<name>_scale_inv` beside an F8_E4M3 `<name>`) at
// load, and remembers every name it was asked for so that the loader can report tensors the
// checkpoint has but the architecture does not use.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/checkpoint/checkpoint.h"
#include "worker/checkpoint/model_config.h"

namespace rami::checkpoint {

class ShardReader {
 public:
  ShardReader(const Checkpoint& checkpoint, const Fp8Config& fp8)
      : checkpoint_(checkpoint), fp8_(fp8) {}

  // `shape` is the full tensor's shape; the result holds the elements of `slice`. An F8_E4M3
  // tensor needs quantization_config and a `<name>_scale_inv` of shape
  // [ceil(rows / block_rows), ceil(cols / block_cols)]; value = fp8 · scale_inv.
  absl::StatusOr<std::vector<float>> Read(const std::string& name,
                                          const std::vector<int64_t>& shape,
                                          const TensorSlice& slice = {});
  void MarkUsed(const std::string& name) { used_.insert(name); }
  // Names with this prefix are not reported as unexpected (e.g. DeepSeek-V3's MTP layers).
  void IgnorePrefix(const std::string& prefix) { ignored_prefixes_.push_back(prefix); }

  absl::Status CheckNoUnexpected() const;

 private:
  absl::StatusOr<std::vector<float>> ReadFp8(const std::string& name,
                                             const std::vector<int64_t>& shape,
                                             const TensorSlice& slice);

  const Checkpoint& checkpoint_;
  Fp8Config fp8_;
  std::set<std::string> used_;
  std::vector<std::string> ignored_prefixes_;
};

}  // namespace rami::checkpoint
