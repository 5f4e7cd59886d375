// ArchitectureSpec: what distinguishes one Hugging Face decoder architecture from another —
// its name in config.json and the architecture-specific config keys. Llama, Qwen2 and Qwen3
// share the Llama-family decoder (worker/cpu/decoder_layer.h), their differences flags in
// ModelConfig; DeepSeek-V2/V3 use the MLA + MoE layer (worker/cpu/mla_layer.h).
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "worker/checkpoint/config_reader.h"
#include "worker/checkpoint/model_config.h"

namespace rami::checkpoint {

struct ArchitectureSpec {
  std::string_view hf_name;  // "LlamaForCausalLM"
  Architecture architecture;
  // Reads and validates the architecture's own keys into *config (common keys are read by
  // ParseModelConfig before this is called).
  absl::Status (*configure)(const ConfigReader& reader, ModelConfig* config);
};

const ArchitectureSpec& LlamaSpec();
const ArchitectureSpec& Qwen2Spec();
const ArchitectureSpec& Qwen3Spec();
const ArchitectureSpec& DeepseekV2Spec();
const ArchitectureSpec& DeepseekV3Spec();

// nullptr when rami does not support `hf_name`.
const ArchitectureSpec* FindArchitecture(std::string_view hf_name);
// "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM" for error messages.
std::string SupportedArchitectures();

// Keys shared by several architectures.
absl::Status RejectSlidingWindow(const ConfigReader& reader);
absl::Status ReadDmsConfig(const ConfigReader& reader, DmsConfig* dms);

}  // namespace rami::checkpoint
