// Sliced float32 reads with fp8 block dequantization and the unexpected-tensor check.
#include "worker/checkpoint/shard_reader.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace rami::checkpoint {

absl::StatusOr<std::vector<float>> ShardReader::Read(const std::string& name,
                                                     const std::vector<int64_t>& shape,
                                                     const TensorSlice& slice) {
  used_.insert(name);
  const TensorInfo* info = checkpoint_.Info(name);
  if (info != nullptr && info->dtype == DType::kF8E4M3) return ReadFp8(name, shape, slice);
  return checkpoint_.ReadF32(name, shape, slice);
}

absl::StatusOr<std::vector<float>> ShardReader::ReadFp8(const std::string& name,
                                                        const std::vector<int64_t>& shape,
                                                        const TensorSlice& slice) {
  const std::string where = absl::StrCat(checkpoint_.dir(), ": tensor \"", name, "\": ");
  if (!fp8_.enabled) {
    return absl::InvalidArgumentError(
        absl::StrCat(where,
                     "F8_E4M3 weights need config.json quantization_config "
                     "(quant_method fp8, weight_block_size)"));
  }
  if (shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "F8_E4M3 is supported for 2-D weights only"));
  }
  const std::string scale_name = name + "_scale_inv";
  used_.insert(scale_name);
  if (!checkpoint_.Has(scale_name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "F8_E4M3 weight without its block scales \"", scale_name, "\""));
  }
  const int64_t br = fp8_.block_rows, bc = fp8_.block_cols;
  const int64_t scale_rows = (shape[0] + br - 1) / br, scale_cols = (shape[1] + bc - 1) / bc;
  RAMI_ASSIGN_OR_RETURN(std::vector<float> values,
                        checkpoint_.ReadF32(name, shape, slice, /*allow_fp8=*/true));
  RAMI_ASSIGN_OR_RETURN(std::vector<float> scale,
                        checkpoint_.ReadF32(scale_name, {scale_rows, scale_cols}));
  // Element (r, c) of the slice is element (r + r0, c + c0) of the full weight.
  const int64_t rows = slice.dim == 0 ? slice.length : shape[0];
  const int64_t cols = slice.dim == 1 ? slice.length : shape[1];
  const int64_t r0 = slice.dim == 0 ? slice.start : 0;
  const int64_t c0 = slice.dim == 1 ? slice.start : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* scale_row = scale.data() + ((r + r0) / br) * scale_cols;
    float* row = values.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) row[c] *= scale_row[(c + c0) / bc];
  }
  return values;
}

absl::Status ShardReader::CheckNoUnexpected() const {
  std::vector<std::string> unexpected;
  for (const std::string& name : checkpoint_.TensorNames()) {
    if (used_.count(name) != 0) continue;
    // Buffers some old checkpoints carry; recomputed from the config.
    if (absl::EndsWith(name, ".rotary_emb.inv_freq")) continue;
    bool ignored = false;
    for (const std::string& prefix : ignored_prefixes_) ignored |= absl::StartsWith(name, prefix);
    if (!ignored) unexpected.push_back(name);
  }
  if (unexpected.empty()) return absl::OkStatus();
  if (unexpected.size() > 5) unexpected.resize(5);
  return absl::InvalidArgumentError(absl::StrCat(
      checkpoint_.dir(),
      ": unexpected tensors for this architecture: ", absl::StrJoin(unexpected, ", ")));
}

}  // namespace rami::checkpoint
