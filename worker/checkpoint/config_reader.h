// ConfigReader: typed, validated reads of config.json keys; every error names the source
// file, the key, what was expected and what was found.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace rami::checkpoint {

class ConfigReader {
 public:
  // `json` must outlive the reader; `source` is used in messages ("…/config.json").
  ConfigReader(const nlohmann::json& json, std::string source)
      : json_(json), source_(std::move(source)) {}

  bool Has(const std::string& key) const;
  const nlohmann::json& json() const { return json_; }
  const std::string& source() const { return source_; }

  // Required when `fallback` is nullopt; the value must lie in [min, max].
  absl::StatusOr<int64_t> Int(const std::string& key, std::optional<int64_t> fallback,
                              int64_t min = 0, int64_t max = INT32_MAX) const;
  absl::StatusOr<double> Double(const std::string& key, std::optional<double> fallback) const;
  absl::StatusOr<bool> Bool(const std::string& key, std::optional<bool> fallback) const;
  absl::StatusOr<std::string> String(const std::string& key,
                                     std::optional<std::string> fallback) const;

  // An InvalidArgument error "<source>: <key>: <message>".
  absl::Status Error(const std::string& key, const std::string& message) const;

 private:
  const nlohmann::json& json_;
  std::string source_;
};

}  // namespace rami::checkpoint
