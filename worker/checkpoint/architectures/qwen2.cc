// Qwen2ForCausalLM (Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen): q/k/v projections always carry
// a bias, o_proj never; no sliding window.
#include "base/status_macros.h"
#include "worker/checkpoint/architectures/architecture.h"

namespace rami::checkpoint {
namespace {

absl::Status ConfigureQwen2(const ConfigReader& reader, ModelConfig* config) {
  config->qkv_bias = true;
  config->o_bias = false;
  RAMI_RETURN_IF_ERROR(RejectSlidingWindow(reader));
  return ReadDmsConfig(reader, &config->dms);
}

}  // namespace

const ArchitectureSpec& Qwen2Spec() {
  static const ArchitectureSpec spec{"Qwen2ForCausalLM", Architecture::kQwen2, &ConfigureQwen2};
  return spec;
}

}  // namespace rami::checkpoint
