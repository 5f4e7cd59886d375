// DeepseekV2ForCausalLM and DeepseekV3ForCausalLM as transformers 4.57 writes them: multi-head
// latent attention (MLA) and DeepSeek mixture of experts. The keys are read and validated
// here; where transformers and DeepSeek's own modeling code disagree, the comment says which
// one rami follows.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/checkpoint/architectures/architecture.h"

namespace rami::checkpoint {
namespace {

double YarnMscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

absl::Status ReadMla(const ConfigReader& reader, bool v3, ModelConfig* c) {
  MlaConfig& m = c->mla;
  m.enabled = true;
  RAMI_ASSIGN_OR_RETURN(int64_t q_lora, reader.Int("q_lora_rank", 0, 0, 1 << 16));  // null: none
  RAMI_ASSIGN_OR_RETURN(int64_t kv_lora, reader.Int("kv_lora_rank", std::nullopt, 1, 1 << 16));
  RAMI_ASSIGN_OR_RETURN(int64_t nope, reader.Int("qk_nope_head_dim", std::nullopt, 1, 1024));
  RAMI_ASSIGN_OR_RETURN(int64_t rope, reader.Int("qk_rope_head_dim", std::nullopt, 2, 1024));
  RAMI_ASSIGN_OR_RETURN(int64_t v_dim, reader.Int("v_head_dim", std::nullopt, 1, 1024));
  if (rope % 2 != 0) return reader.Error("qk_rope_head_dim", "must be even (RoPE rotates pairs)");
  m.q_lora_rank = static_cast<int>(q_lora);
  m.kv_lora_rank = static_cast<int>(kv_lora);
  m.qk_nope_head_dim = static_cast<int>(nope);
  m.qk_rope_head_dim = static_cast<int>(rope);
  m.v_head_dim = static_cast<int>(v_dim);
  // transformers' V2 rotates interleaved pairs as complex numbers; V3 permutes the pairs and
  // rotates halves (rope_interleave, default true), which gives the same dot products.
  m.rope_interleave = true;
  if (v3) {
    RAMI_ASSIGN_OR_RETURN(m.rope_interleave, reader.Bool("rope_interleave", true));
  }
  RAMI_ASSIGN_OR_RETURN(m.attention_bias, reader.Bool("attention_bias", false));
  // All query heads read the one latent: a GQA grouping of the expanded keys is not defined.
  if (c->num_kv_heads != c->num_q_heads) {
    return reader.Error("num_key_value_heads",
                        absl::StrCat("must equal num_attention_heads (", c->num_q_heads,
                                     ") for MLA, found ", c->num_kv_heads));
  }
  // RoPE covers the decoupled rope dims only (transformers sets head_dim = qk_rope_head_dim).
  c->head_dim = m.qk_rope_head_dim;
  // The cache holds one latent row per token and layer: a single "KV head".
  c->num_kv_heads = 1;
  // Softmax scale with DeepSeek's YaRN correction: qk_head_dim^-0.5 · mscale(factor,
  // mscale_all_dim)². transformers applies it for V3 only; DeepSeek-V2's own code applies it
  // too, and rami follows DeepSeek for both (identical unless mscale_all_dim is set).
  double scale = 1.0 / std::sqrt(static_cast<double>(m.qk_head_dim()));
  if (c->rope.type == RopeType::kYarn && c->rope.mscale_all_dim != 0.0) {
    const double mscale = YarnMscale(c->rope.factor, c->rope.mscale_all_dim);
    scale *= mscale * mscale;
  }
  m.softmax_scale = static_cast<float>(scale);
  return absl::OkStatus();
}

absl::Status ReadMoe(const ConfigReader& reader, bool v3, ModelConfig* c) {
  MoeConfig& m = c->moe;
  m.enabled = true;
  RAMI_ASSIGN_OR_RETURN(int64_t experts, reader.Int("n_routed_experts", std::nullopt, 1, 4096));
  RAMI_ASSIGN_OR_RETURN(int64_t per_token,
                        reader.Int("num_experts_per_tok", std::nullopt, 1, experts));
  RAMI_ASSIGN_OR_RETURN(int64_t shared, reader.Int("n_shared_experts", 0, 0, 1 << 10));
  RAMI_ASSIGN_OR_RETURN(int64_t inter,
                        reader.Int("moe_intermediate_size", std::nullopt, 1, 1 << 18));
  RAMI_ASSIGN_OR_RETURN(int64_t first_dense,
                        reader.Int("first_k_dense_replace", 0, 0, c->num_layers));
  // transformers makes every layer >= first_k_dense_replace an MoE layer and ignores
  // moe_layer_freq; DeepSeek's code also skips layers not divisible by it. Every released
  // checkpoint uses 1, where both agree.
  RAMI_ASSIGN_OR_RETURN(int64_t freq, reader.Int("moe_layer_freq", 1, 1, 1 << 10));
  if (freq != 1) {
    return reader.Error(
        "moe_layer_freq",
        absl::StrCat("only 1 is supported (transformers ignores it), found ", freq));
  }
  m.num_experts = static_cast<int>(experts);
  m.experts_per_token = static_cast<int>(per_token);
  m.num_shared_experts = static_cast<int>(shared);
  m.intermediate_size = static_cast<int>(inter);
  m.first_k_dense_replace = static_cast<int>(first_dense);
  RAMI_ASSIGN_OR_RETURN(m.routed_scaling_factor,
                        reader.Double("routed_scaling_factor", v3 ? 2.5 : 1.0));

  const std::string want_scoring = v3 ? "sigmoid" : "softmax";
  RAMI_ASSIGN_OR_RETURN(std::string scoring, reader.String("scoring_func", want_scoring));
  if (scoring != want_scoring) {
    return reader.Error("scoring_func",
                        absl::StrCat("\"", scoring, "\" is not supported for ",
                                     c->architecture_name, " (only \"", want_scoring, "\")"));
  }
  m.scoring = v3 ? MoeScoring::kSigmoid : MoeScoring::kSoftmax;
  RAMI_ASSIGN_OR_RETURN(std::string method,
                        reader.String("topk_method", v3 ? "noaux_tc" : "greedy"));
  if (v3) {
    // transformers' V3 router always does noaux_tc (bias-corrected, group-limited choice).
    if (method != "noaux_tc") {
      return reader.Error("topk_method", absl::StrCat("\"", method,
                                                      "\" is not supported for "
                                                      "DeepseekV3ForCausalLM (only \"noaux_tc\")"));
    }
    m.topk = MoeTopk::kNoauxTc;
    m.correction_bias = true;
    RAMI_ASSIGN_OR_RETURN(m.norm_topk_prob, reader.Bool("norm_topk_prob", true));
  } else {
    if (method == "greedy") {
      m.topk = MoeTopk::kGreedy;
    } else if (method == "group_limited_greedy") {
      m.topk = MoeTopk::kGroupLimitedGreedy;
    } else {
      return reader.Error("topk_method",
                          absl::StrCat("\"", method,
                                       "\" is not supported for DeepseekV2ForCausalLM "
                                       "(supported: greedy, group_limited_greedy)"));
    }
    // transformers' V2 router never normalizes the top-k weights; DeepSeek's code does when
    // this is true. Released V2 checkpoints say false, where both agree.
    RAMI_ASSIGN_OR_RETURN(bool norm, reader.Bool("norm_topk_prob", false));
    if (norm) {
      return reader.Error("norm_topk_prob",
                          "true is not supported for DeepseekV2ForCausalLM (transformers ignores "
                          "it, DeepSeek's code normalizes: ambiguous)");
    }
  }
  if (m.topk != MoeTopk::kGreedy) {
    RAMI_ASSIGN_OR_RETURN(int64_t groups, reader.Int("n_group", std::nullopt, 1, experts));
    RAMI_ASSIGN_OR_RETURN(int64_t topk_groups, reader.Int("topk_group", std::nullopt, 1, groups));
    if (experts % groups != 0) {
      return reader.Error("n_group",
                          absl::StrCat(groups, " does not divide n_routed_experts ", experts));
    }
    // V3 scores a group by the sum of its two best experts.
    if (v3 && experts / groups < 2) {
      return reader.Error("n_group",
                          "needs at least 2 experts per group (noaux_tc sums the top 2)");
    }
    if (per_token > topk_groups * (experts / groups)) {
      return reader.Error("num_experts_per_tok",
                          absl::StrCat(per_token, " exceeds the experts of topk_group groups (",
                                       topk_groups * (experts / groups), ")"));
    }
    m.num_groups = static_cast<int>(groups);
    m.topk_groups = static_cast<int>(topk_groups);
  }
  return absl::OkStatus();
}

absl::Status ConfigureDeepseek(const ConfigReader& reader, ModelConfig* c, bool v3) {
  if (!v3) {
    RAMI_ASSIGN_OR_RETURN(bool mlp_bias, reader.Bool("mlp_bias", false));
    if (mlp_bias) return reader.Error("mlp_bias", "true is not supported");
  }
  RAMI_ASSIGN_OR_RETURN(int64_t mtp, reader.Int("num_nextn_predict_layers", 0, 0, 64));
  c->num_nextn_predict_layers = static_cast<int>(mtp);
  RAMI_RETURN_IF_ERROR(ReadMla(reader, v3, c));
  RAMI_RETURN_IF_ERROR(ReadMoe(reader, v3, c));
  RAMI_RETURN_IF_ERROR(ReadDmsConfig(reader, &c->dms));
  c->dms.adapter_bias = c->mla.attention_bias;
  // dms.md §6: one decision per (token, layer) from the adapter; there is no borrowed query
  // neuron for a latent shared by every head.
  if (c->dms.enabled && !c->dms.separate_alpha) {
    return reader.Error("dms_separate_alpha",
                        "MLA models need true (an adapter with one output row per layer)");
  }
  return absl::OkStatus();
}

absl::Status ConfigureDeepseekV2(const ConfigReader& reader, ModelConfig* c) {
  return ConfigureDeepseek(reader, c, /*v3=*/false);
}

absl::Status ConfigureDeepseekV3(const ConfigReader& reader, ModelConfig* c) {
  return ConfigureDeepseek(reader, c, /*v3=*/true);
}

}  // namespace

const ArchitectureSpec& DeepseekV2Spec() {
  static const ArchitectureSpec spec{"DeepseekV2ForCausalLM", Architecture::kDeepseekV2,
                                     &ConfigureDeepseekV2};
  return spec;
}

const ArchitectureSpec& DeepseekV3Spec() {
  static const ArchitectureSpec spec{"DeepseekV3ForCausalLM", Architecture::kDeepseekV3,
                                     &ConfigureDeepseekV3};
  return spec;
}

}  // namespace rami::checkpoint
