// Typed config.json reads with messages that name the file and the key.
#include "worker/checkpoint/config_reader.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace rami::checkpoint {
namespace {

std::string Found(const nlohmann::json& v) { return v.dump(); }

}  // namespace

bool ConfigReader::Has(const std::string& key) const {
  return json_.is_object() && json_.contains(key) && !json_.at(key).is_null();
}

absl::Status ConfigReader::Error(const std::string& key, const std::string& message) const {
  return absl::InvalidArgumentError(absl::StrCat(source_, ": ", key, ": ", message));
}

absl::StatusOr<int64_t> ConfigReader::Int(const std::string& key, std::optional<int64_t> fallback,
                                          int64_t min, int64_t max) const {
  if (!Has(key)) {
    if (fallback.has_value()) return *fallback;
    return Error(key, "missing (required)");
  }
  const nlohmann::json& v = json_.at(key);
  int64_t value = 0;
  if (v.is_number_integer()) {
    value = v.get<int64_t>();
  } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
             std::fabs(v.get<double>()) < 9.0e15) {
    value = static_cast<int64_t>(v.get<double>());
  } else {
    return Error(key, absl::StrCat("expected an integer, found ", Found(v)));
  }
  if (value < min || value > max) {
    return Error(key, absl::StrCat("expected a value in [", min, ", ", max, "], found ", value));
  }
  return value;
}

absl::StatusOr<double> ConfigReader::Double(const std::string& key,
                                            std::optional<double> fallback) const {
  if (!Has(key)) {
    if (fallback.has_value()) return *fallback;
    return Error(key, "missing (required)");
  }
  const nlohmann::json& v = json_.at(key);
  if (!v.is_number() || !std::isfinite(v.get<double>())) {
    return Error(key, absl::StrCat("expected a finite number, found ", Found(v)));
  }
  return v.get<double>();
}

absl::StatusOr<bool> ConfigReader::Bool(const std::string& key,
                                        std::optional<bool> fallback) const {
  if (!Has(key)) {
    if (fallback.has_value()) return *fallback;
    return Error(key, "missing (required)");
  }
  const nlohmann::json& v = json_.at(key);
  if (!v.is_boolean()) return Error(key, absl::StrCat("expected true or false, found ", Found(v)));
  return v.get<bool>();
}

absl::StatusOr<std::string> ConfigReader::String(const std::string& key,
                                                 std::optional<std::string> fallback) const {
  if (!Has(key)) {
    if (fallback.has_value()) return *fallback;
    return Error(key, "missing (required)");
  }
  const nlohmann::json& v = json_.at(key);
  if (!v.is_string()) return Error(key, absl::StrCat("expected a string, found ", Found(v)));
  return v.get<std::string>();
}

}  // namespace rami::checkpoint
