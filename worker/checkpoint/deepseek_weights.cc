// Loading and tensor-parallel slicing of a DeepSeek-V2/V3 layer under Hugging Face names:
//   self_attn.{q_proj | q_a_proj, q_a_layernorm, q_b_proj}, kv_a_proj_with_mqa,
//   kv_a_layernorm, kv_b_proj, o_proj; mlp.{gate,up,down}_proj (dense layers) or
//   mlp.gate.weight, mlp.gate.e_score_correction_bias (V3), mlp.experts.{e}.*,
//   mlp.shared_experts.*; self_attn.dms_proj_alpha{,_norm} (DMS-MLA adapter, one row).
// Query heads (q_b / q_proj rows, kv_b rows, o_proj columns) and expert intermediate rows are
// split across ranks; the latent path (q_a, kv_a, norms), the router and the DMS adapter are
// replicated, so every rank computes the same latent, decisions and routing.
#include "worker/checkpoint/deepseek_weights.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace rami::checkpoint {
namespace {

void Append(std::vector<float>& dst, const std::vector<float>& src) {
  dst.insert(dst.end(), src.begin(), src.end());
}

absl::StatusOr<MlaWeights> LoadMla(ShardReader& reader, const ModelConfig& c, const ShardDims& d,
                                   const ShardSpec& shard, const std::string& attn) {
  const MlaConfig& m = c.mla;
  const int64_t hidden = c.hidden_size;
  const int64_t heads = c.num_q_heads;
  const int64_t qk = m.qk_head_dim();
  const int64_t lora = m.kv_lora_rank;
  const int64_t first_head = int64_t{shard.rank} * d.q_heads;
  const TensorSlice q_rows{0, first_head * qk, d.q_heads * qk};
  MlaWeights w;
  if (m.q_lora_rank > 0) {
    const int64_t q_lora = m.q_lora_rank;
    RAMI_ASSIGN_OR_RETURN(w.q_a, reader.Read(attn + "q_a_proj.weight", {q_lora, hidden}));
    if (m.attention_bias) {
      RAMI_ASSIGN_OR_RETURN(w.q_a_bias, reader.Read(attn + "q_a_proj.bias", {q_lora}));
    }
    RAMI_ASSIGN_OR_RETURN(w.q_a_norm, reader.Read(attn + "q_a_layernorm.weight", {q_lora}));
    RAMI_ASSIGN_OR_RETURN(w.q_b,
                          reader.Read(attn + "q_b_proj.weight", {heads * qk, q_lora}, q_rows));
  } else {
    RAMI_ASSIGN_OR_RETURN(w.q_b, reader.Read(attn + "q_proj.weight", {heads * qk, hidden}, q_rows));
  }
  const int64_t kv_a_rows = lora + m.qk_rope_head_dim;
  RAMI_ASSIGN_OR_RETURN(w.kv_a,
                        reader.Read(attn + "kv_a_proj_with_mqa.weight", {kv_a_rows, hidden}));
  if (m.attention_bias) {
    RAMI_ASSIGN_OR_RETURN(w.kv_a_bias, reader.Read(attn + "kv_a_proj_with_mqa.bias", {kv_a_rows}));
  }
  RAMI_ASSIGN_OR_RETURN(w.kv_a_norm, reader.Read(attn + "kv_a_layernorm.weight", {lora}));

  // kv_b_proj: [heads · (nope + v), kv_lora]; head h's rows are its nope (key) rows, then v.
  const int64_t nope = m.qk_nope_head_dim, v_dim = m.v_head_dim;
  RAMI_ASSIGN_OR_RETURN(std::vector<float> kv_b,
                        reader.Read(attn + "kv_b_proj.weight", {heads * (nope + v_dim), lora},
                                    {0, first_head * (nope + v_dim), d.q_heads * (nope + v_dim)}));
  w.w_uk_t.resize(static_cast<size_t>(d.q_heads) * lora * nope);
  w.w_uv.resize(static_cast<size_t>(d.q_heads) * v_dim * lora);
  for (int64_t h = 0; h < d.q_heads; ++h) {
    const float* head = kv_b.data() + h * (nope + v_dim) * lora;
    for (int64_t n = 0; n < nope; ++n) {
      for (int64_t l = 0; l < lora; ++l) w.w_uk_t[(h * lora + l) * nope + n] = head[n * lora + l];
    }
    std::copy_n(head + nope * lora, v_dim * lora, w.w_uv.begin() + h * v_dim * lora);
  }
  return w;
}

absl::StatusOr<ExpertWeights> LoadExpert(ShardReader& reader, const std::string& prefix,
                                         int64_t hidden, int64_t inter, int64_t local, int rank) {
  ExpertWeights w;
  const TensorSlice rows{0, rank * local, local};
  for (const char* proj : {"gate_proj", "up_proj"}) {
    RAMI_ASSIGN_OR_RETURN(std::vector<float> weight,
                          reader.Read(prefix + proj + ".weight", {inter, hidden}, rows));
    Append(w.gate_up, weight);
  }
  RAMI_ASSIGN_OR_RETURN(
      w.down, reader.Read(prefix + "down_proj.weight", {hidden, inter}, {1, rank * local, local}));
  return w;
}

absl::StatusOr<MoeWeights> LoadMoe(ShardReader& reader, const ModelConfig& c, const ShardDims& d,
                                   const ShardSpec& shard, const std::string& mlp) {
  const MoeConfig& m = c.moe;
  const int64_t hidden = c.hidden_size;
  MoeWeights w;
  RAMI_ASSIGN_OR_RETURN(w.router, reader.Read(mlp + "gate.weight", {m.num_experts, hidden}));
  if (m.correction_bias) {
    RAMI_ASSIGN_OR_RETURN(w.correction_bias,
                          reader.Read(mlp + "gate.e_score_correction_bias", {m.num_experts}));
  }
  w.experts.reserve(m.num_experts);
  for (int e = 0; e < m.num_experts; ++e) {
    RAMI_ASSIGN_OR_RETURN(ExpertWeights expert,
                          LoadExpert(reader, absl::StrCat(mlp, "experts.", e, "."), hidden,
                                     m.intermediate_size, d.moe_intermediate, shard.rank));
    w.experts.push_back(std::move(expert));
  }
  if (m.num_shared_experts > 0) {
    RAMI_ASSIGN_OR_RETURN(w.shared, LoadExpert(reader, mlp + "shared_experts.", hidden,
                                               int64_t{m.intermediate_size} * m.num_shared_experts,
                                               d.shared_intermediate, shard.rank));
  }
  return w;
}

}  // namespace

absl::StatusOr<LayerWeights> LoadDeepseekLayer(ShardReader& reader, const ModelConfig& c,
                                               const ShardDims& d, const ShardSpec& shard,
                                               int layer) {
  const std::string p = absl::StrCat("model.layers.", layer, ".");
  const std::string attn = p + "self_attn.";
  const int64_t hidden = c.hidden_size;
  LayerWeights w;
  RAMI_ASSIGN_OR_RETURN(w.input_norm, reader.Read(p + "input_layernorm.weight", {hidden}));
  RAMI_ASSIGN_OR_RETURN(w.post_norm, reader.Read(p + "post_attention_layernorm.weight", {hidden}));
  RAMI_ASSIGN_OR_RETURN(w.mla, LoadMla(reader, c, d, shard, attn));
  const int64_t v_width = int64_t{c.num_q_heads} * c.mla.v_head_dim;
  const int64_t local_v = int64_t{d.q_heads} * c.mla.v_head_dim;
  RAMI_ASSIGN_OR_RETURN(w.o_proj, reader.Read(attn + "o_proj.weight", {hidden, v_width},
                                              {1, shard.rank * local_v, local_v}));
  if (c.mla.attention_bias) {
    // Row-parallel: the partial outputs are summed, so only one rank adds the bias.
    RAMI_ASSIGN_OR_RETURN(std::vector<float> bias, reader.Read(attn + "o_proj.bias", {hidden}));
    if (shard.rank == 0) w.o_bias = std::move(bias);
  }
  if (c.dms.enabled) {
    // dms.md §6: one decision per (token, layer), replicated on every rank.
    RAMI_ASSIGN_OR_RETURN(w.dms_alpha, reader.Read(attn + "dms_proj_alpha.weight", {1, hidden}));
    if (c.dms.adapter_bias) {
      RAMI_ASSIGN_OR_RETURN(w.dms_alpha_bias, reader.Read(attn + "dms_proj_alpha.bias", {1}));
    }
    RAMI_ASSIGN_OR_RETURN(w.dms_alpha_norm,
                          reader.Read(attn + "dms_proj_alpha_norm.weight", {hidden}));
  }
  const std::string mlp = p + "mlp.";
  if (c.moe.IsMoeLayer(layer)) {
    RAMI_ASSIGN_OR_RETURN(w.moe, LoadMoe(reader, c, d, shard, mlp));
  } else {
    RAMI_ASSIGN_OR_RETURN(ExpertWeights dense, LoadExpert(reader, mlp, hidden, c.intermediate_size,
                                                          d.intermediate, shard.rank));
    w.gate_up = std::move(dense.gate_up);
    w.down = std::move(dense.down);
  }
  return w;
}

}  // namespace rami::checkpoint
