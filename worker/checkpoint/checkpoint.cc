// Checkpoint: opens a Hugging Face model directory and reads its tensors as float32 (see .h).
#include "worker/checkpoint/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace rami::checkpoint {
namespace {

using nlohmann::json;

constexpr std::string_view kConfigName = "config.json";
constexpr std::string_view kSingleName = "model.safetensors";
constexpr std::string_view kIndexName = "model.safetensors.index.json";

// Debian's Abseil has its own absl::string_view with no conversion from std::string_view
// (docs/contributing.md, toolchain note 7); StrCat and CHexEscape need it.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string JoinPath(const std::string& dir, std::string_view name) {
  return (std::filesystem::path(dir) / std::string(name)).string();
}

bool IsRegularFile(const std::string& path) {
  std::error_code ec;  // the error_code overload never throws
  return std::filesystem::is_regular_file(path, ec);
}

// Whole file as a string; NotFound when it does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  if (!IsRegularFile(path)) return absl::NotFoundError(absl::StrCat(path, " not found"));
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  return contents.str();
}

// A shard name from the index must name a file directly inside the checkpoint directory.
bool IsPlainFileName(std::string_view name) {
  return !name.empty() && name.find('/') == std::string_view::npos &&
         name.find("..") == std::string_view::npos && name.find('\0') == std::string_view::npos &&
         name != ".";
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Shards named by the index: file name → tensor names the index places there.
struct WeightMap {
  std::map<std::string, std::string> shard_of;                 // tensor → shard file name
  std::map<std::string, std::vector<std::string>> tensors_in;  // shard → tensors
};

absl::StatusOr<WeightMap> ParseIndex(const std::string& index_path) {
  RAMI_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(index_path));
  RAMI_ASSIGN_OR_RETURN(json index, ParseJsonStrict(text, index_path));
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        index_path, ": expected a JSON object with a \"weight_map\" object of tensor → shard"));
  }
  WeightMap map;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string() || !IsPlainFileName(shard.get_ref<const std::string&>())) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map entry for tensor ", QuoteForError(tensor),
                       ": expected a plain shard file name (no '/' or '..'), found ",
                       shard.is_string() ? QuoteForError(shard.get_ref<const std::string&>())
                                         : std::string(shard.type_name())));
    }
    map.shard_of[tensor] = shard.get<std::string>();
    map.tensors_in[shard.get<std::string>()].push_back(tensor);
  }
  return map;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  auto checkpoint = std::make_unique<Checkpoint>();
  checkpoint->dir_ = dir;

  const std::string config_path = JoinPath(dir, kConfigName);
  absl::StatusOr<std::string> config_text = ReadWholeFile(config_path);
  if (!config_text.ok()) {
    return absl::Status(config_text.status().code(),
                        absl::StrCat("checkpoint ", dir, ": ", config_text.status().message()));
  }
  RAMI_ASSIGN_OR_RETURN(checkpoint->config_, ParseJsonStrict(*config_text, config_path));
  if (!checkpoint->config_.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": expected a JSON object, found ",
                                                   checkpoint->config_.type_name()));
  }

  const std::string index_path = JoinPath(dir, kIndexName);
  const std::string single_path = JoinPath(dir, kSingleName);
  std::optional<WeightMap> weight_map;
  if (IsRegularFile(index_path)) {
    RAMI_ASSIGN_OR_RETURN(weight_map, ParseIndex(index_path));
    for (const auto& [shard, listed] : weight_map->tensors_in) {
      RAMI_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(JoinPath(dir, shard)));
      for (const std::string& tensor : listed) {
        if (file->Find(tensor) == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat(index_path, ": tensor ", QuoteForError(tensor), " is listed in shard ",
                           QuoteForError(shard), " but ", file->path(), " does not contain it"));
        }
      }
      checkpoint->files_.push_back(std::move(file));
    }
  } else if (IsRegularFile(single_path)) {
    RAMI_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single_path));
    checkpoint->files_.push_back(std::move(file));
  } else {
    return absl::NotFoundError(absl::StrCat("checkpoint ", dir, ": found neither ", Sv(kSingleName),
                                            " nor ", Sv(kIndexName)));
  }

  // index_: every tensor of every file, sorted by name; equal neighbours are cross-shard
  // duplicates.
  for (const auto& file : checkpoint->files_) {
    for (const TensorInfo& info : file->tensors()) {
      checkpoint->index_.push_back({info.name, Entry{file.get(), &info}});
    }
  }
  std::stable_sort(checkpoint->index_.begin(), checkpoint->index_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < checkpoint->index_.size(); ++i) {
    const auto& [name, entry] = checkpoint->index_[i];
    const auto& [previous_name, previous] = checkpoint->index_[i - 1];
    if (name == previous_name) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint ", dir, ": tensor ", QuoteForError(name),
                       " is in two shards: ", previous.file->path(), " and ", entry.file->path()));
    }
  }
  if (weight_map.has_value()) {
    // Every shard tensor must be in the index (and so, by the checks above, in this shard).
    for (const auto& [name, entry] : checkpoint->index_) {
      if (!weight_map->shard_of.contains(name)) {
        return absl::InvalidArgumentError(absl::StrCat(entry.file->path(), ": tensor ",
                                                       QuoteForError(name), " is missing from ",
                                                       index_path, " weight_map"));
      }
    }
  }
  return checkpoint;
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, entry] : index_) names.push_back(name);
  return names;
}

bool Checkpoint::Has(std::string_view name) const { return FindEntry(name) != nullptr; }

const TensorInfo* Checkpoint::Info(std::string_view name) const {
  const Entry* entry = FindEntry(name);
  return entry == nullptr ? nullptr : entry->info;
}

const Checkpoint::Entry* Checkpoint::FindEntry(std::string_view name) const {
  auto it = std::lower_bound(index_.begin(), index_.end(), name,
                             [](const auto& item, std::string_view n) { return item.first < n; });
  if (it == index_.end() || it->first != name) return nullptr;
  return &it->second;
}

absl::StatusOr<std::vector<float>> Checkpoint::ReadF32(std::string_view name,
                                                       const std::vector<int64_t>& expected_shape,
                                                       const TensorSlice& slice,
                                                       bool allow_fp8) const {
  const Entry* entry = FindEntry(name);
  if (entry == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", dir_, ": tensor ", QuoteForError(name), " not found"));
  }
  const TensorInfo& info = *entry->info;
  const std::string where =
      absl::StrCat(entry->file->path(), ": tensor ", QuoteForError(name), ": ");
  if (info.shape != expected_shape) {
    return absl::InvalidArgumentError(absl::StrCat(where, "expected shape ",
                                                   ShapeString(expected_shape), ", found ",
                                                   ShapeString(info.shape)));
  }
  const bool fp8 = info.dtype == DType::kF8E4M3 || info.dtype == DType::kF8E5M2;
  if (info.dtype != DType::kF32 && info.dtype != DType::kF16 && info.dtype != DType::kBF16 &&
      !(allow_fp8 && fp8)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "expected dtype F32, F16 or BF16, found ", Sv(DTypeName(info.dtype))));
  }

  // View the tensor as [outer, extent, inner] around the sliced dim; copy `length` rows of
  // `inner` elements from each of the `outer` blocks. Without a slice: one block, all of it.
  int64_t outer = 1, extent = 1, inner = info.numel(), start = 0, length = 1;
  if (slice.dim >= 0) {
    const int64_t rank = static_cast<int64_t>(info.shape.size());
    if (slice.dim >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "slice dim ", slice.dim, " out of range for rank ", rank));
    }
    extent = info.shape[slice.dim];
    if (slice.start < 0 || slice.length < 0 || slice.start > extent - slice.length) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "slice start ", slice.start, " length ", slice.length, " along dim ", slice.dim,
          " out of range for extent ", extent, " (shape ", ShapeString(info.shape), ")"));
    }
    outer = 1;
    for (int d = 0; d < slice.dim; ++d) outer *= info.shape[d];
    inner = 1;
    for (int64_t d = slice.dim + 1; d < rank; ++d) inner *= info.shape[d];
    start = slice.start;
    length = slice.length;
  }

  const absl::Span<const uint8_t> bytes = entry->file->Bytes(info);
  const size_t element_size = DTypeSize(info.dtype);
  std::vector<float> out(static_cast<size_t>(outer * length * inner));
  for (int64_t o = 0; o < outer; ++o) {
    const size_t src_element = static_cast<size_t>((o * extent + start) * inner);
    RAMI_RETURN_IF_ERROR(ConvertToF32(info.dtype, bytes.data() + src_element * element_size,
                                      static_cast<size_t>(length * inner),
                                      out.data() + o * length * inner));
  }
  return out;
}

}  // namespace rami::checkpoint
