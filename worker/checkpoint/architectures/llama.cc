// LlamaForCausalLM (Llama 2, Llama 3.x incl. rope_scaling "llama3"): optional attention
// biases (q/k/v and o), no MLP bias.
#include "base/status_macros.h"
#include "worker/checkpoint/architectures/architecture.h"

namespace rami::checkpoint {
namespace {

absl::Status ConfigureLlama(const ConfigReader& reader, ModelConfig* config) {
  RAMI_ASSIGN_OR_RETURN(bool attention_bias, reader.Bool("attention_bias", false));
  config->qkv_bias = attention_bias;
  config->o_bias = attention_bias;
  RAMI_ASSIGN_OR_RETURN(bool mlp_bias, reader.Bool("mlp_bias", false));
  if (mlp_bias) return reader.Error("mlp_bias", "true is not supported");
  return ReadDmsConfig(reader, &config->dms);
}

}  // namespace

const ArchitectureSpec& LlamaSpec() {
  static const ArchitectureSpec spec{"LlamaForCausalLM", Architecture::kLlama, &ConfigureLlama};
  return spec;
}

}  // namespace rami::checkpoint
