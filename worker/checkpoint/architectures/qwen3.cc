// Qwen3ForCausalLM: per-head RMSNorm of q and k before RoPE (q_norm, k_norm over head_dim),
// optional attention bias, YaRN for long context. Also the DMS checkpoint
// (nvidia/Qwen3-8B-DMS-8x): same architecture name, dms_* keys and an auto_map.
#include "base/status_macros.h"
#include "worker/checkpoint/architectures/architecture.h"

namespace rami::checkpoint {
namespace {

absl::Status ConfigureQwen3(const ConfigReader& reader, ModelConfig* config) {
  config->qk_norm = true;
  RAMI_ASSIGN_OR_RETURN(bool attention_bias, reader.Bool("attention_bias", false));
  config->qkv_bias = attention_bias;
  config->o_bias = attention_bias;
  RAMI_RETURN_IF_ERROR(RejectSlidingWindow(reader));
  return ReadDmsConfig(reader, &config->dms);
}

}  // namespace

const ArchitectureSpec& Qwen3Spec() {
  static const ArchitectureSpec spec{"Qwen3ForCausalLM", Architecture::kQwen3, &ConfigureQwen3};
  return spec;
}

}  // namespace rami::checkpoint
