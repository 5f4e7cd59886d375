// One Llama-family decoder layer on the CPU backend:
//   x = RMSNorm(residual); q,k,v = x·Wqkv (+b); [q/k norm]; [DMS decision + query surgery];
//   RoPE; cache k,v (+ DMS flags);
//   residual += AllReduce(Attention(q, cache)·Woᵀ)
//   x = RMSNorm(residual); residual += AllReduce(SwiGLU(x·Wgate_upᵀ)·Wdownᵀ)
// The residual add is fused into the next RMSNorm: each sub-layer leaves its output in
// `delta`, and the following norm adds it to `residual`.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "kernels/paged_attention.h"
#include "worker/checkpoint/model_config.h"
#include "worker/checkpoint/weights.h"
#include "worker/collectives/collectives.h"
#include "worker/cpu/step_metadata.h"
#include "worker/engine/rope_table.h"

namespace rami::cpu {

// Activations of one step; sized by Resize, reused by every layer.
struct LayerWorkspace {
  std::vector<float> residual;      // [T, hidden]
  std::vector<float> delta;         // [T, hidden] output of the last sub-layer, not yet added
  std::vector<float> normed;        // [T, hidden]
  std::vector<float> qkv;           // [T, (q + 2 kv) · head_dim]
  std::vector<float> q;             // [T, q_heads, head_dim]
  std::vector<float> k;             // [T, kv_heads, head_dim]
  std::vector<float> v;             // [T, kv_heads, head_dim]
  std::vector<float> attn;          // [T, q_heads · head_dim]
  std::vector<float> gate_up;       // [T, 2 · intermediate]
  std::vector<float> act;           // [T, intermediate]
  std::vector<float> alpha_logits;  // [T, kv_heads] DMS adapter logits
  std::vector<uint8_t> alpha;       // [T, kv_heads] DMS decisions, 1 = evict
  void Resize(int num_tokens, const checkpoint::ModelConfig& config,
              const checkpoint::ShardDims& dims);
};

struct LayerContext {
  const checkpoint::ModelConfig& config;
  const checkpoint::ShardDims& dims;
  const engine::RopeTable& rope;
  const StepMetadata& step;
  kernels::KvStreamsView cache;  // stream fields filled from step.streams
  bool write_decisions;          // the cache policy is dms: decisions become flags
};

// `first`: the residual holds the embeddings and delta is empty (no add before the norm).
absl::Status RunDecoderLayer(const checkpoint::LayerWeights& w, int layer, bool first,
                             const LayerContext& ctx, LayerWorkspace& ws,
                             collectives::Collectives& comm);

// Pieces shared with the MLA layer (worker/cpu/mla_layer.h).
// normed = RMSNorm(residual [+= delta]) · weight
void AddAndNorm(LayerWorkspace& ws, const std::vector<float>& weight, bool add, int num_tokens,
                const checkpoint::ModelConfig& config);
// DMS adapter: ws.alpha[T, kv_heads] = dms_alpha · RMSNorm_alpha(residual) · scale − offset > 0.
void AdapterDecisions(const checkpoint::LayerWeights& w, const LayerContext& ctx,
                      LayerWorkspace& ws);
// delta = SwiGLU(normed · gate_upᵀ) · downᵀ, all-reduced (the dense MLP of this rank's slice).
absl::Status RunDenseMlp(const checkpoint::LayerWeights& w, const LayerContext& ctx,
                         LayerWorkspace& ws, collectives::Collectives& comm);

}  // namespace rami::cpu
