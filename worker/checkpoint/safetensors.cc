// SafetensorsFile: mmap of one .safetensors file and validation of its JSON header (see .h).
#include "worker/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <numeric>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace rami::checkpoint {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // 100 MiB, as in the reference reader
constexpr std::string_view kMetadataKey = "__metadata__";

// Debian's Abseil has its own absl::string_view with no conversion from std::string_view
// (docs/contributing.md, toolchain note 7); StrCat and CHexEscape need it.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Offset of the first byte that is not valid UTF-8 (overlongs, surrogates and code points past
// U+10FFFF included), or npos.
size_t FindInvalidUtf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // > U+10FFFF
    } else {
      return i;
    }
    if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// What a JSON value is, for "expected X, found Y" messages; scalars show (a prefix of) their
// value, containers only their type so a hostile header cannot blow up the message.
std::string Describe(const json& value) {
  if (value.is_string()) return absl::StrCat("string ", QuoteForError(value.get<std::string>()));
  if (value.is_number() || value.is_boolean() || value.is_null()) {
    return absl::StrCat(value.type_name(), " ", value.dump());
  }
  return absl::StrCat(value.type_name(), " of ", value.size(), " elements");
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// A JSON integer >= 0 (nlohmann parses those as unsigned); floats and negatives are not.
bool IsNonNegativeInteger(const json& value) {
  return value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0);
}

// Validates one header entry `name` → {dtype, shape, data_offsets} against a data section of
// `data_size` bytes.
absl::StatusOr<TensorInfo> ParseEntry(const std::string& path, const std::string& name,
                                      const json& entry, uint64_t data_size) {
  const std::string where = absl::StrCat(path, ": tensor ", QuoteForError(name), ": ");
  auto error = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(where, parts...));
  };
  if (!entry.is_object()) {
    return error("expected an object with dtype, shape and data_offsets, found ", Describe(entry));
  }
  for (const auto& [key, unused] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return error("unexpected field ", QuoteForError(key),
                   "; expected only dtype, shape and data_offsets");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) return error("missing field \"", key, "\"");
  }

  TensorInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) return error("dtype: expected a string, found ", Describe(dtype));
  absl::StatusOr<DType> parsed = ParseDType(dtype.get<std::string>());
  if (!parsed.ok()) return error(parsed.status().message());
  info.dtype = *parsed;

  const json& shape = entry["shape"];
  if (!shape.is_array()) {
    return error("shape: expected an array of non-negative integers, found ", Describe(shape));
  }
  int64_t numel = 1;
  for (const json& dim : shape) {
    const size_t index = info.shape.size();
    if (!IsNonNegativeInteger(dim) || dim.get<uint64_t>() > uint64_t{INT64_MAX}) {
      return error("shape: expected an array of non-negative integers, found element ",
                   Describe(dim));
    }
    info.shape.push_back(dim.get<int64_t>());
    if (__builtin_mul_overflow(numel, info.shape.back(), &numel)) {
      return error("shape: element count overflows int64 at dimension ", index);
    }
  }
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), DTypeSize(info.dtype), &info.nbytes)) {
    return error("shape ", ShapeString(info.shape), ": byte size overflows uint64");
  }

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !IsNonNegativeInteger(offsets[0]) ||
      !IsNonNegativeInteger(offsets[1]) ||
      offsets[0].get<uint64_t>() > offsets[1].get<uint64_t>()) {
    return error("data_offsets: expected two ascending non-negative integers [begin, end], found ",
                 offsets.is_array() && offsets.size() <= 4 ? offsets.dump() : Describe(offsets));
  }
  const uint64_t begin = offsets[0].get<uint64_t>();
  const uint64_t end = offsets[1].get<uint64_t>();
  if (end > data_size) {
    return error("data_offsets [", begin, ", ", end, "] extend beyond the data section of ",
                 data_size, " bytes");
  }
  if (end - begin != info.nbytes) {
    return error("data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes, expected ",
                 info.nbytes, " (shape ", ShapeString(info.shape), " of ",
                 Sv(DTypeName(info.dtype)), ")");
  }
  info.begin = begin;
  return info;
}

// "__metadata__": an object whose values are all strings (the format's rule); content unused.
absl::Status CheckMetadata(const std::string& path, const json& metadata) {
  if (!metadata.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": __metadata__: expected an object of strings, found ", Describe(metadata)));
  }
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": __metadata__ entry ", QuoteForError(key),
                       ": expected a string, found ", Describe(value)));
    }
  }
  return absl::OkStatus();
}

// Rejects byte ranges shared by two tensors. Empty tensors occupy no bytes and never overlap.
absl::Status CheckNoOverlap(const std::string& path, const std::vector<TensorInfo>& tensors) {
  std::vector<const TensorInfo*> sorted;
  for (const TensorInfo& t : tensors) {
    if (t.nbytes > 0) sorted.push_back(&t);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  const TensorInfo* reach = nullptr;  // the range ending furthest among those seen so far
  for (const TensorInfo* t : sorted) {
    if (reach != nullptr && t->begin < reach->begin + reach->nbytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", QuoteForError(t->name), " bytes [", t->begin, ", ",
                       t->begin + t->nbytes, ") overlap tensor ", QuoteForError(reach->name),
                       " bytes [", reach->begin, ", ", reach->begin + reach->nbytes, ")"));
    }
    if (reach == nullptr || t->begin + t->nbytes > reach->begin + reach->nbytes) reach = t;
  }
  return absl::OkStatus();
}

}  // namespace

std::string QuoteForError(std::string_view text) {
  constexpr size_t kMaxBytes = 80;
  if (text.size() <= kMaxBytes) return absl::StrCat("\"", absl::CHexEscape(Sv(text)), "\"");
  return absl::StrCat("\"", absl::CHexEscape(Sv(text.substr(0, kMaxBytes))), "...\"");
}

namespace {

// The strictness checks of ParseJsonStrict as a SAX pass that builds nothing: duplicate keys
// (one key set per open object) and the top-level keys in document order. nlohmann's
// callback-filtered DOM parser is quadratic in an object's size (each nested object's end
// scans all of its parent's members for a discarded value: 100k safetensors entries took
// minutes), so the checks run here and the DOM comes from the plain, linear parser.
class StrictChecks : public nlohmann::json_sax<json> {
 public:
  explicit StrictChecks(std::vector<std::string>* top_level_keys)
      : top_level_keys_(top_level_keys) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    open_objects_.emplace_back();
    open_is_object_.push_back(true);
    return true;
  }
  bool end_object() override {
    open_objects_.pop_back();
    open_is_object_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    open_is_object_.push_back(false);
    return true;
  }
  bool end_array() override {
    open_is_object_.pop_back();
    return true;
  }
  bool key(string_t& key) override {
    // The top-level object is the only one opened while nothing else is open.
    const bool top_level = open_is_object_.size() == 1;
    if (!open_objects_.back().insert(key).second && duplicate_depth_ == 0) {
      duplicate_ = key;
      duplicate_depth_ = top_level ? 1 : 2;
    }
    if (top_level && top_level_keys_ != nullptr) top_level_keys_->push_back(key);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error_ = e.what();
    return false;
  }

  const std::string& error() const { return error_; }
  const std::string& duplicate() const { return duplicate_; }
  int duplicate_depth() const { return duplicate_depth_; }  // 0: none, 1: top level, 2: nested

 private:
  std::vector<std::string>* top_level_keys_;
  std::vector<std::set<std::string>> open_objects_;  // keys of each open object
  std::vector<bool> open_is_object_;                 // every open container, outermost first
  std::string duplicate_;                            // the first duplicate key found
  int duplicate_depth_ = 0;
  std::string error_;
};

}  // namespace

absl::StatusOr<json> ParseJsonStrict(std::string_view text, std::string_view source,
                                     std::string_view top_level_noun,
                                     std::vector<std::string>* top_level_keys) {
  if (size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(source), ": JSON is not valid UTF-8 (bad byte at offset ", bad, ")"));
  }
  auto invalid_json = [&](std::string_view what) {
    // nlohmann's message quotes the offending token; keep it short.
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(source), ": invalid JSON: ", Sv(what.substr(0, 200)), what.size() > 200 ? "..." : ""));
  };
  if (top_level_keys != nullptr) top_level_keys->clear();
  StrictChecks checks(top_level_keys);
  try {
    if (!json::sax_parse(text.begin(), text.end(), &checks)) return invalid_json(checks.error());
  } catch (const json::exception& e) {
    return invalid_json(e.what());
  }
  if (checks.duplicate_depth() == 1) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(source), ": duplicate ", Sv(top_level_noun),
                                                   " ", QuoteForError(checks.duplicate())));
  }
  if (checks.duplicate_depth() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(Sv(source), ": duplicate key ",
                                                   QuoteForError(checks.duplicate()),
                                                   " in a nested JSON object"));
  }
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return invalid_json(e.what());  // the SAX pass accepted it: not expected
  }
}

int64_t TensorInfo::numel() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message = absl::StrCat("cannot open ", path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(message) : absl::InvalidArgumentError(message);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": file is ", file_size, " bytes, shorter than the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int mmap_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot mmap ", path, ": ", std::strerror(mmap_errno)));
  }
  // From here on the destructor owns the mapping, whatever Open returns.
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = static_cast<const uint8_t*>(map);
  file->map_size_ = file_size;

  uint64_t header_size;
  std::memcpy(&header_size, file->map_, 8);  // little-endian host (static_assert in dtype.cc)
  if (header_size > file_size - 8 || header_size > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header length ", header_size, " exceeds ",
                     header_size > file_size - 8 ? "the file's remaining " : "the limit of ",
                     header_size > file_size - 8 ? file_size - 8 : kMaxHeaderBytes, " bytes"));
  }
  file->data_start_ = 8 + header_size;
  const uint64_t data_size = file_size - file->data_start_;
  const std::string_view header_text(reinterpret_cast<const char*>(file->map_ + 8), header_size);

  std::vector<std::string> names;
  RAMI_ASSIGN_OR_RETURN(json header,
                        ParseJsonStrict(header_text, path + " header", "tensor name", &names));
  if (!header.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": header: expected a JSON object of tensors, found ", Describe(header)));
  }
  const int64_t num_tensors =
      static_cast<int64_t>(names.size()) - std::count(names.begin(), names.end(), kMetadataKey);
  if (num_tensors > kMaxTensors) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header names ", num_tensors,
                                                   " tensors, over the limit of ", kMaxTensors,
                                                   " tensors per file"));
  }
  for (const std::string& name : names) {
    if (name == kMetadataKey) {
      RAMI_RETURN_IF_ERROR(CheckMetadata(path, header[name]));
      continue;
    }
    RAMI_ASSIGN_OR_RETURN(TensorInfo info, ParseEntry(path, name, header[name], data_size));
    file->tensors_.push_back(std::move(info));
  }
  RAMI_RETURN_IF_ERROR(CheckNoOverlap(path, file->tensors_));

  file->by_name_.resize(file->tensors_.size());
  std::iota(file->by_name_.begin(), file->by_name_.end(), size_t{0});
  std::sort(file->by_name_.begin(), file->by_name_.end(),
            [&](size_t a, size_t b) { return file->tensors_[a].name < file->tensors_[b].name; });
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), map_size_);
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = std::lower_bound(by_name_.begin(), by_name_.end(), name,
                             [&](size_t i, std::string_view n) { return tensors_[i].name < n; });
  if (it == by_name_.end() || tensors_[*it].name != name) return nullptr;
  return &tensors_[*it];
}

absl::Span<const uint8_t> SafetensorsFile::Bytes(const TensorInfo& info) const {
  const uint64_t data_size = map_size_ - data_start_;
  if (info.begin > data_size || info.nbytes > data_size - info.begin) return {};
  return absl::Span<const uint8_t>(map_ + data_start_ + info.begin, info.nbytes);
}

}  // namespace rami::checkpoint
