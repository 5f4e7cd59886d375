// Writers for test checkpoints (see safetensors_writer.h).
#include "tests/testing/safetensors_writer.h"

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "worker/checkpoint/safetensors.h"

namespace rami::testing {

using checkpoint::DType;
using checkpoint::DTypeName;
using checkpoint::F32ToBF16;
using checkpoint::F32ToF16;

namespace {

void AppendLittleEndian(std::string& out, const void* value, size_t size) {
  // Hosts are little-endian (static_assert in worker/checkpoint/dtype.cc).
  out.append(static_cast<const char*>(value), size);
}

}  // namespace

std::string BuildSafetensors(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps header order = `tensors` order (nlohmann::json would sort the keys).
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::string data;
  for (const TensorSpec& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  return BuildSafetensorsRaw(header.dump(), data);
}

std::string BuildSafetensorsRaw(std::string_view header, std::string_view data) {
  return BuildSafetensorsRaw(header.size(), header, data);
}

std::string BuildSafetensorsRaw(uint64_t header_length, std::string_view header,
                                std::string_view data) {
  std::string out;
  AppendLittleEndian(out, &header_length, sizeof(header_length));
  out.append(header);
  out.append(data);
  return out;
}

std::string EncodeFloats(DType dtype, absl::Span<const float> values) {
  std::string out;
  for (float v : values) {
    if (dtype == DType::kF32) {
      AppendLittleEndian(out, &v, sizeof(v));
    } else if (dtype == DType::kF16 || dtype == DType::kBF16) {
      const uint16_t bits = dtype == DType::kF16 ? F32ToF16(v) : F32ToBF16(v);
      AppendLittleEndian(out, &bits, sizeof(bits));
    } else {  // a bug in the calling test
      std::fprintf(stderr, "EncodeFloats: unsupported dtype %s\n",
                   std::string(DTypeName(dtype)).c_str());
      std::abort();
    }
  }
  return out;
}

std::vector<float> Iota(size_t n, float start) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = start + static_cast<float>(i);
  return values;
}

TensorSpec MakeTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                      absl::Span<const float> values) {
  return TensorSpec{std::move(name), std::string(DTypeName(dtype)), std::move(shape),
                    EncodeFloats(dtype, values)};
}

absl::Status WriteFile(const std::string& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::string BuildIndexJson(const std::map<std::string, std::string>& weight_map) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}};
  return index.dump(2);
}

namespace {

// A copy of the one-file checkpoint in `model_dir` in a new temp dir under `base`: every file
// as is but config.json (through edit_config) and model.safetensors (each tensor through
// edit_tensor, which may fail).
absl::StatusOr<ScopedTempDir> CopyCheckpoint(
    const std::string& model_dir, const std::string& base, std::string_view prefix,
    const std::function<void(nlohmann::json&)>& edit_config,
    const std::function<absl::Status(const checkpoint::TensorInfo&, TensorSpec&)>& edit_tensor) {
  absl::StatusOr<ScopedTempDir> dir = ScopedTempDir::Create(base, prefix);
  if (!dir.ok()) return dir.status();
  for (const auto& entry : std::filesystem::directory_iterator(model_dir)) {
    const std::string name = entry.path().filename().string();
    if (name == "model.safetensors" || name == "config.json") continue;
    std::filesystem::copy_file(entry.path(), dir->Join(name));
  }
  std::ifstream in(model_dir + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return absl::InvalidArgumentError(model_dir + "/config.json");
  edit_config(config);
  if (absl::Status s = WriteFile(dir->Join("config.json"), config.dump(2)); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<checkpoint::SafetensorsFile>> file =
      checkpoint::SafetensorsFile::Open(model_dir + "/model.safetensors");
  if (!file.ok()) return file.status();
  std::vector<TensorSpec> tensors;
  for (const checkpoint::TensorInfo& t : (*file)->tensors()) {
    const absl::Span<const uint8_t> bytes = (*file)->Bytes(t);
    TensorSpec spec{t.name, std::string(DTypeName(t.dtype)), t.shape,
                    std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size())};
    if (absl::Status s = edit_tensor(t, spec); !s.ok()) return s;
    tensors.push_back(std::move(spec));
  }
  if (absl::Status s = WriteFile(dir->Join("model.safetensors"), BuildSafetensors(tensors));
      !s.ok()) {
    return s;
  }
  return dir;
}

}  // namespace

absl::StatusOr<ScopedTempDir> CopyWithVocabulary(const std::string& model_dir, int vocab_size,
                                                 const std::string& base) {
  return CopyCheckpoint(
      model_dir, base, "rami_vocab",
      [&](nlohmann::json& config) { config["vocab_size"] = vocab_size; },
      [&](const checkpoint::TensorInfo& t, TensorSpec& spec) {
        if (t.name != "model.embed_tokens.weight" && t.name != "lm_head.weight") {
          return absl::OkStatus();
        }
        if (t.shape.size() != 2 || t.shape[0] < vocab_size) {
          return absl::InvalidArgumentError(
              absl::StrCat(t.name, ": fewer than ", vocab_size, " rows"));
        }
        spec.shape[0] = vocab_size;
        spec.bytes.resize(static_cast<size_t>(vocab_size) * t.shape[1] * DTypeSize(t.dtype));
        return absl::OkStatus();
      });
}

absl::StatusOr<ScopedTempDir> CopyWithTensorValue(const std::string& model_dir,
                                                  const std::string& tensor,
                                                  const std::vector<int64_t>& rows, float value,
                                                  const std::string& base) {
  bool found = false;
  absl::StatusOr<ScopedTempDir> dir = CopyCheckpoint(
      model_dir, base, "rami_poisoned", [](nlohmann::json&) {},
      [&](const checkpoint::TensorInfo& t, TensorSpec& spec) {
        if (t.name != tensor) return absl::OkStatus();
        found = true;
        if (t.dtype != DType::kF32 || t.shape.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(tensor, ": not an F32 tensor"));
        }
        const int64_t row_elems = t.numel() / t.shape[0];
        for (int64_t r = 0; r < t.shape[0]; ++r) {
          if (!rows.empty() && std::find(rows.begin(), rows.end(), r) == rows.end()) continue;
          for (int64_t i = r * row_elems; i < (r + 1) * row_elems; ++i) {
            std::memcpy(spec.bytes.data() + i * sizeof(float), &value, sizeof(float));
          }
        }
        return absl::OkStatus();
      });
  if (dir.ok() && !found) return absl::NotFoundError(absl::StrCat(tensor, " not in ", model_dir));
  return dir;
}

absl::StatusOr<ScopedTempDir> ScopedTempDir::Create(const std::string& base,
                                                    std::string_view prefix) {
  std::string templ = (std::filesystem::path(base) / (std::string(prefix) + ".XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", templ, " failed: ", std::strerror(errno)));
  }
  return ScopedTempDir(std::move(templ));
}

ScopedTempDir::ScopedTempDir(ScopedTempDir&& other) noexcept
    : path_(std::exchange(other.path_, std::string())) {}

ScopedTempDir& ScopedTempDir::operator=(ScopedTempDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::exchange(other.path_, std::string());
  }
  return *this;
}

ScopedTempDir::~ScopedTempDir() { Remove(); }

void ScopedTempDir::Remove() {
  if (path_.empty()) return;
  std::error_code ec;  // best effort: a leftover temp dir must not fail a test
  std::filesystem::remove_all(path_, ec);
  path_.clear();
}

std::string ScopedTempDir::Join(std::string_view name) const {
  return (std::filesystem::path(path_) / std::string(name)).string();
}

absl::Status WriteModelDir(const std::string& dir, const nlohmann::json& config,
                           const std::vector<NamedFile>& files) {
  if (!config.is_null()) {
    absl::Status status =
        WriteFile((std::filesystem::path(dir) / "config.json").string(), config.dump(2));
    if (!status.ok()) return status;
  }
  for (const NamedFile& file : files) {
    absl::Status status =
        WriteFile((std::filesystem::path(dir) / file.name).string(), file.contents);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace rami::testing
