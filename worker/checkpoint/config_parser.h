// ParseModelConfig: a Hugging Face config.json into a validated ModelConfig — the common keys
// here, each architecture's own keys through its ArchitectureSpec (architectures/). Every
// unsupported architecture or value is an InvalidArgument naming the key and the file.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "worker/checkpoint/model_config.h"

namespace rami::checkpoint {

// Parses and validates; `source` names the file in error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(const nlohmann::json& json, const std::string& source);

}  // namespace rami::checkpoint
