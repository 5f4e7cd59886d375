// Test helpers that write checkpoints: safetensors files built in memory (well-formed, or with a
// verbatim header so tests can craft malformed ones), float encoders, and scoped temporary model
// directories holding config.json, shards and an index.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "worker/checkpoint/dtype.h"

namespace rami::testing {

using checkpoint::DType;

// One tensor to write. `bytes` is written as is: it should hold numel * dtype size bytes, but
// the writer does not check, so a test can also produce an inconsistent file.
struct TensorSpec {
  std::string name;
  std::string dtype;           // safetensors spelling: "F32", "BF16", "I32", ...
  std::vector<int64_t> shape;  // empty = scalar
  std::string bytes;           // raw little-endian data
};

// A file's bytes: 8-byte little-endian header length, the JSON header (tensors in the given
// order with consecutive data_offsets, then "__metadata__" when `metadata` is non-empty), and
// the tensors' bytes back to back.
std::string BuildSafetensors(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& metadata = {});

// 8-byte little-endian size of `header`, `header` verbatim, then `data`: for malformed headers.
std::string BuildSafetensorsRaw(std::string_view header, std::string_view data);
// As above with an explicit (possibly lying) header length.
std::string BuildSafetensorsRaw(uint64_t header_length, std::string_view header,
                                std::string_view data);

// `values` as raw little-endian bytes of F32, F16 or BF16 (round to nearest even); other
// dtypes abort the test program (a bug in the test).
std::string EncodeFloats(DType dtype, absl::Span<const float> values);
// 0, 1, 2, ... (n values): self-describing data whose every element is exact in F16/BF16 for
// n <= 256.
std::vector<float> Iota(size_t n, float start = 0.0f);
// A tensor of `shape` holding `values` (row-major) encoded as `dtype`.
TensorSpec MakeTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                      absl::Span<const float> values);

// Writes `contents` to `path`, replacing it.
absl::Status WriteFile(const std::string& path, std::string_view contents);

// A model.safetensors.index.json text for `weight_map` (tensor name → shard file name).
std::string BuildIndexJson(const std::map<std::string, std::string>& weight_map);

// A fresh directory, removed with everything in it when the object dies. Move-only.
class ScopedTempDir {
 public:
  // Creates `base`/`prefix`.XXXXXX (base: e.g. ::testing::TempDir()).
  static absl::StatusOr<ScopedTempDir> Create(const std::string& base,
                                              std::string_view prefix = "rami");
  ScopedTempDir(ScopedTempDir&& other) noexcept;
  ScopedTempDir& operator=(ScopedTempDir&& other) noexcept;
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  ~ScopedTempDir();

  const std::string& path() const { return path_; }
  // path()/name.
  std::string Join(std::string_view name) const;

 private:
  explicit ScopedTempDir(std::string path) : path_(std::move(path)) {}
  void Remove();      // deletes path_ recursively (best effort) and clears it
  std::string path_;  // empty after a move
};

// A file inside a model directory.
struct NamedFile {
  std::string name;  // relative to the directory
  std::string contents;
};

// Writes config.json (config.dump(); skipped when `config` is null) and `files` into `dir`.
absl::Status WriteModelDir(const std::string& dir, const nlohmann::json& config,
                           const std::vector<NamedFile>& files);

// A copy of the one-file checkpoint in `model_dir` (config.json + model.safetensors) in a new
// temp dir under `base`, cut to a vocabulary of `vocab_size` tokens: the embedding's and the LM
// head's first vocab_size rows, config.json's vocab_size changed; every other file and tensor
// as is (its token ids must stay below vocab_size). For vocabularies that do not divide a
// tensor-parallel world.
absl::StatusOr<ScopedTempDir> CopyWithVocabulary(const std::string& model_dir, int vocab_size,
                                                 const std::string& base);

// A copy of the one-file checkpoint in `model_dir` in a new temp dir under `base` with every
// element of the F32 tensor `tensor` in `rows` (of its first dimension; empty: all of them) set
// to `value` — e.g. NaN weights, or one token's embedding row made NaN.
absl::StatusOr<ScopedTempDir> CopyWithTensorValue(const std::string& model_dir,
                                                  const std::string& tensor,
                                                  const std::vector<int64_t>& rows, float value,
                                                  const std::string& base);

}  // namespace rami::testing
