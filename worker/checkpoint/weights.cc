// Loading and tensor-parallel slicing of a Llama-family checkpoint.
#include "worker/checkpoint/weights.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/checkpoint/deepseek_weights.h"

namespace rami::checkpoint {
namespace {

using Shape = std::vector<int64_t>;

void Append(std::vector<float>& dst, const std::vector<float>& src) {
  dst.insert(dst.end(), src.begin(), src.end());
}

absl::StatusOr<LayerWeights> LoadLayer(ShardReader& reader, const ModelConfig& c,
                                       const ShardDims& d, const ShardSpec& shard, int layer) {
  const std::string p = absl::StrCat("model.layers.", layer, ".");
  const int64_t hidden = c.hidden_size;
  const int64_t hd = c.head_dim;
  const int64_t q_rows = int64_t{c.num_q_heads} * hd;
  const int64_t kv_rows = int64_t{c.num_kv_heads} * hd;
  const TensorSlice q_slice{0, shard.rank * d.q_heads * hd, d.q_heads * hd};
  const TensorSlice kv_slice{0, shard.rank * d.kv_heads * hd, d.kv_heads * hd};

  LayerWeights w;
  RAMI_ASSIGN_OR_RETURN(w.input_norm, reader.Read(p + "input_layernorm.weight", {hidden}));
  RAMI_ASSIGN_OR_RETURN(w.post_norm, reader.Read(p + "post_attention_layernorm.weight", {hidden}));
  const std::string attn = p + "self_attn.";
  for (const auto& [proj, rows, slice] :
       {std::tuple{"q_proj", q_rows, q_slice}, std::tuple{"k_proj", kv_rows, kv_slice},
        std::tuple{"v_proj", kv_rows, kv_slice}}) {
    const std::string name = attn + proj;
    RAMI_ASSIGN_OR_RETURN(std::vector<float> weight,
                          reader.Read(name + ".weight", {rows, hidden}, slice));
    Append(w.qkv, weight);
    if (c.qkv_bias) {
      RAMI_ASSIGN_OR_RETURN(std::vector<float> bias, reader.Read(name + ".bias", {rows}, slice));
      Append(w.qkv_bias, bias);
    }
  }
  if (c.qk_norm) {
    RAMI_ASSIGN_OR_RETURN(w.q_norm, reader.Read(attn + "q_norm.weight", {hd}));
    RAMI_ASSIGN_OR_RETURN(w.k_norm, reader.Read(attn + "k_norm.weight", {hd}));
  }
  RAMI_ASSIGN_OR_RETURN(w.o_proj, reader.Read(attn + "o_proj.weight", {hidden, q_rows},
                                              {1, shard.rank * d.q_heads * hd, d.q_heads * hd}));
  if (c.o_bias) {
    // Row-parallel: the partial outputs are summed, so only one rank adds the bias.
    RAMI_ASSIGN_OR_RETURN(std::vector<float> bias, reader.Read(attn + "o_proj.bias", {hidden}));
    if (shard.rank == 0) w.o_bias = std::move(bias);
  }
  if (c.dms.enabled && c.dms.separate_alpha) {
    // Adapter rows are per KV head: each rank reads the rows of its own heads (dms.md §5).
    const TensorSlice head_rows{0, int64_t{shard.rank} * d.kv_heads, d.kv_heads};
    const int64_t kv = c.num_kv_heads;
    RAMI_ASSIGN_OR_RETURN(w.dms_alpha,
                          reader.Read(attn + "dms_proj_alpha.weight", {kv, hidden}, head_rows));
    if (c.dms.adapter_bias) {
      RAMI_ASSIGN_OR_RETURN(w.dms_alpha_bias,
                            reader.Read(attn + "dms_proj_alpha.bias", {kv}, head_rows));
    }
    RAMI_ASSIGN_OR_RETURN(w.dms_alpha_norm,
                          reader.Read(attn + "dms_proj_alpha_norm.weight", {hidden}));
  }
  const std::string mlp = p + "mlp.";
  const int64_t inter = c.intermediate_size;
  const TensorSlice inter_rows{0, int64_t{shard.rank} * d.intermediate, d.intermediate};
  for (const char* proj : {"gate_proj", "up_proj"}) {
    RAMI_ASSIGN_OR_RETURN(std::vector<float> weight,
                          reader.Read(mlp + proj + ".weight", {inter, hidden}, inter_rows));
    Append(w.gate_up, weight);
  }
  RAMI_ASSIGN_OR_RETURN(w.down,
                        reader.Read(mlp + "down_proj.weight", {hidden, inter},
                                    {1, int64_t{shard.rank} * d.intermediate, d.intermediate}));
  return w;
}

}  // namespace

absl::StatusOr<ModelWeights> LoadWeights(const Checkpoint& checkpoint, const ModelConfig& c,
                                         const ShardSpec& shard) {
  std::vector<LayerWeights> layers;
  layers.reserve(c.num_layers);
  RAMI_ASSIGN_OR_RETURN(ModelWeights w,
                        LoadWeightsByLayer(checkpoint, c, shard, [&](int, LayerWeights&& l) {
                          layers.push_back(std::move(l));
                          return absl::OkStatus();
                        }));
  w.layers = std::move(layers);
  return w;
}

absl::StatusOr<ModelWeights> LoadWeightsByLayer(
    const Checkpoint& checkpoint, const ModelConfig& c, const ShardSpec& shard,
    const std::function<absl::Status(int layer, LayerWeights&& weights)>& take) {
  ModelWeights w;
  RAMI_ASSIGN_OR_RETURN(w.dims, ShardDims::Make(c, shard));
  ShardReader reader(checkpoint, c.fp8);
  for (int i = 0; i < c.num_nextn_predict_layers; ++i) {
    reader.IgnorePrefix(absl::StrCat("model.layers.", c.num_layers + i, "."));
  }
  const int64_t hidden = c.hidden_size;
  // This rank's real vocabulary rows, then zero rows up to the padded shard (ShardDims::vocab).
  const TensorSlice vocab_rows{0, w.dims.vocab_start, w.dims.vocab_real};
  const size_t padded = static_cast<size_t>(w.dims.vocab) * hidden;
  RAMI_ASSIGN_OR_RETURN(
      w.embed, reader.Read("model.embed_tokens.weight", {c.vocab_size, hidden}, vocab_rows));
  w.embed.resize(padded, 0.0f);
  if (c.tie_word_embeddings) {
    // Tied checkpoints usually omit lm_head; one that stores it anyway stores a copy.
    reader.MarkUsed("lm_head.weight");
  } else {
    RAMI_ASSIGN_OR_RETURN(w.lm_head,
                          reader.Read("lm_head.weight", {c.vocab_size, hidden}, vocab_rows));
    w.lm_head.resize(padded, 0.0f);
  }
  RAMI_ASSIGN_OR_RETURN(w.final_norm, reader.Read("model.norm.weight", {hidden}));
  for (int layer = 0; layer < c.num_layers; ++layer) {
    RAMI_ASSIGN_OR_RETURN(LayerWeights lw, c.mla.enabled
                                               ? LoadDeepseekLayer(reader, c, w.dims, shard, layer)
                                               : LoadLayer(reader, c, w.dims, shard, layer));
    RAMI_RETURN_IF_ERROR(take(layer, std::move(lw)));
  }
  RAMI_RETURN_IF_ERROR(reader.CheckNoUnexpected());
  return w;
}

}  // namespace rami::checkpoint
