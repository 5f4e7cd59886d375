// DeviceWeights: one rank's shard of a Llama-family model (ModelWeights, already sliced for
// tensor parallelism by the CPU loader) copied to the device in the compute dtype — bf16 for
// production (rounded to nearest even on the host, as __float2bfloat16_rn) or fp32 for the
// exactness mode. Norm weights and biases are in the same dtype (the kernels read them so).
// Owns every allocation; null pointers mark tensors the model does not have.
// DeepSeek-V2/V3 (config.mla.enabled): the MLA projections (DeviceMlaWeights), and per MoE layer
// the router (fp32 whatever the dtype), each expert's slice and the shared experts
// (DeviceMoeWeights); the dense first layers use gate_up/down as a Llama layer does.
// Allocate: the same tensors filled on the device by the caller — benchmarks of real shapes
// without a checkpoint or a host copy of the weights (tools/bench_weights.h; Llama family only).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda/device_dtype.h"
#include "worker/checkpoint/checkpoint.h"
#include "worker/checkpoint/model_config.h"
#include "worker/checkpoint/weights.h"

namespace rami::cuda {

// DeepSeek multi-head latent attention (worker/checkpoint/deepseek_weights.h MlaWeights): this
// rank's query heads; the latent path (q_a, kv_a, their norms) replicated.
struct DeviceMlaWeights {
  const void* q_a = nullptr;        // [q_lora, hidden], or null without q_lora_rank
  const void* q_a_bias = nullptr;   // [q_lora] or null (attention_bias)
  const void* q_a_norm = nullptr;   // [q_lora] or null
  const void* q_b = nullptr;        // [local_heads · qk_head_dim, q_lora or hidden] (q_proj)
  const void* kv_a = nullptr;       // [kv_lora + rope, hidden]
  const void* kv_a_bias = nullptr;  // [kv_lora + rope] or null
  const void* kv_a_norm = nullptr;  // [kv_lora]
  const void* w_uk_t = nullptr;     // [local_heads, kv_lora, qk_nope] (W_uk_h transposed)
  const void* w_uv = nullptr;       // [local_heads, v_head_dim, kv_lora]
};

// One DeepSeek MoE layer (MoeWeights): the router in fp32 whatever the compute dtype — DeepSeek
// and transformers compute the router logits in fp32, and a top-k choice is discontinuous, so a
// bf16 router would flip experts — and this rank's slice of every expert, as the host pointer
// arrays RunMoeExpertsCuda takes (all experts of a layer in one allocation each for gate_up
// and down).
struct DeviceMoeWeights {
  const float* router = nullptr;           // [num_experts, hidden] fp32
  const float* correction_bias = nullptr;  // [num_experts] fp32 (V3) or null
  std::vector<const void*> gate_up;        // [num_experts] device [2 · moe_inter_local, hidden]
  std::vector<const void*> down;           // [num_experts] device [hidden, moe_inter_local]
  const void* shared_gate_up = nullptr;    // [2 · shared_inter_local, hidden] or null
  const void* shared_down = nullptr;       // [hidden, shared_inter_local] or null

  bool empty() const { return router == nullptr; }  // a dense layer
};

struct DeviceLayerWeights {
  const void* input_norm = nullptr;      // [hidden]
  const void* qkv = nullptr;             // [(q_heads + 2 kv_heads) · head_dim, hidden]
  const void* qkv_bias = nullptr;        // [(q_heads + 2 kv_heads) · head_dim] or null
  const void* q_norm = nullptr;          // [head_dim] or null
  const void* k_norm = nullptr;          // [head_dim] or null
  const void* o_proj = nullptr;          // [hidden, q_heads · head_dim]
  const void* o_bias = nullptr;          // [hidden] (rank 0) or null
  const void* post_norm = nullptr;       // [hidden]
  const void* gate_up = nullptr;         // [2 · intermediate, hidden]
  const void* down = nullptr;            // [hidden, intermediate]
  const void* dms_alpha = nullptr;       // [kv_heads, hidden] or null
  const void* dms_alpha_bias = nullptr;  // [kv_heads] or null
  const void* dms_alpha_norm = nullptr;  // [hidden] or null
  // DeepSeek only (qkv and the q/k norms null): the attention, and the MoE of layers ≥
  // first_k_dense_replace (gate_up/down null there).
  DeviceMlaWeights mla;
  DeviceMoeWeights moe;
};

class DeviceWeights {
 public:
  // Uploads what `weights` holds (CheckComplete says whether that is a whole model). DeepSeek
  // configs: InvalidArgument when a layer lacks its MLA (or, at and
  // past first_k_dense_replace, MoE) weights.
  static absl::StatusOr<std::unique_ptr<DeviceWeights>> Upload(
      const checkpoint::ModelConfig& config, const checkpoint::ModelWeights& weights,
      kernels::DeviceDType dtype);
  // This rank's shard read from `checkpoint` one layer at a time (LoadWeightsByLayer) and
  // uploaded as it comes, so the host holds the fp32 copy of one layer at most (plus the
  // embedding and LM head until they are uploaded last) — never the whole model.
  static absl::StatusOr<std::unique_ptr<DeviceWeights>> Load(
      const checkpoint::Checkpoint& checkpoint, const checkpoint::ModelConfig& config,
      const checkpoint::ShardSpec& shard, kernels::DeviceDType dtype);
  // What a tensor of Allocate holds, for the caller that fills it.
  enum class TensorRole { kMatrix, kBias, kNorm };  // weights, biases/embeddings, norm scales
  // Fills `count` elements of the weights' dtype at device address `data` (its role says what
  // values suit it), enqueued on the legacy stream; Allocate synchronizes the device after it.
  using Filler = std::function<cudaError_t(void* data, size_t count, TensorRole role)>;
  // Every tensor Upload would create for `config` and `dims` (ShardDims::Make; the rank is
  // vocab_start / vocab, for o_proj's bias), allocated and filled by `fill` in a fixed order
  // (embedding, LM head unless tied, final norm, then each layer's tensors in
  // DeviceLayerWeights order) — benchmarks fill them with random values (tools/bench_weights.h).
  // Llama-family configs only (Unimplemented for DeepSeek).
  static absl::StatusOr<std::unique_ptr<DeviceWeights>> Allocate(
      const checkpoint::ModelConfig& config, const checkpoint::ShardDims& dims,
      kernels::DeviceDType dtype, const Filler& fill);
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;

  kernels::DeviceDType dtype() const { return dtype_; }
  const void* embed() const { return embed_; }            // [vocab_local, hidden]
  const void* lm_head() const { return lm_head_; }        // [vocab_local, hidden] (embed if tied)
  const void* final_norm() const { return final_norm_; }  // [hidden]
  const DeviceLayerWeights& layer(int i) const { return layers_[i]; }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  int64_t bytes() const { return bytes_; }  // device memory held
  // OK when every tensor `config` needs is present for its num_layers layers (what a forward
  // pass reads); FailedPrecondition naming the first missing one otherwise.
  absl::Status CheckComplete(const checkpoint::ModelConfig& config) const;

 private:
  explicit DeviceWeights(kernels::DeviceDType dtype) : dtype_(dtype) {}
  // The embedding, LM head and final norm; one layer (layers arrive in order).
  absl::Status PutTop(const checkpoint::ModelWeights& w);
  absl::Status PutLayer(const checkpoint::ModelConfig& config, int layer,
                        const checkpoint::LayerWeights& l);
  // Copies `host` in the dtype (or `dtype`) to a new allocation; null for an empty tensor.
  absl::StatusOr<const void*> Put(const std::vector<float>& host);
  absl::StatusOr<const void*> Put(const std::vector<float>& host, kernels::DeviceDType dtype);
  // Copies `parts` in the dtype into one allocation (each part 256-byte aligned); (*ptrs)[i]
  // points at part i, null for an empty part.
  absl::Status PutPacked(const std::vector<const std::vector<float>*>& parts,
                         std::vector<const void*>* ptrs);
  // DeepSeek layer `layer`'s MLA and MoE tensors into `x`; InvalidArgument when `l` lacks them.
  absl::Status PutDeepseek(const checkpoint::ModelConfig& config, int layer,
                           const checkpoint::LayerWeights& l, DeviceLayerWeights* x);
  // A new allocation of `count` elements filled by `fill` (null when count is 0).
  absl::StatusOr<const void*> PutFilled(int64_t count, TensorRole role, const Filler& fill);

  kernels::DeviceDType dtype_;
  const void* embed_ = nullptr;
  const void* lm_head_ = nullptr;
  const void* final_norm_ = nullptr;
  std::vector<DeviceLayerWeights> layers_;
  std::vector<void*> allocations_;
  int64_t bytes_ = 0;
};

// KV pages of `page_bytes` that fit in `fraction` of the device's free memory (after the
// weights and workspaces are allocated): the pool size LoadShard reports.
absl::StatusOr<int64_t> DevicePoolPages(double fraction, int64_t page_bytes);

}  // namespace rami::cuda
