// Upload of a rank's weight shard to the device, or tensors of its shape filled there by the
// caller; see device_weights.h.
#include "worker/cuda/device_weights.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/checkpoint/dtype.h"
#include "worker/cuda/cuda_status.h"

namespace rami::cuda {

using checkpoint::ExpertWeights;
using checkpoint::F32ToBF16;
using checkpoint::LayerWeights;
using checkpoint::MlaWeights;
using checkpoint::ModelConfig;
using checkpoint::ModelWeights;
using checkpoint::MoeWeights;
using checkpoint::ShardDims;

DeviceWeights::~DeviceWeights() {
  for (void* p : allocations_) cudaFree(p);
}

namespace {

constexpr size_t kPackAlign = 256;  // bytes: every packed part starts cuBLASLt-aligned

// `host` as the device stores it in `dtype` (bf16: rounded to nearest even).
void Convert(const std::vector<float>& host, kernels::DeviceDType dtype, uint8_t* out) {
  switch (dtype) {
    case kernels::DeviceDType::kF32:
      std::memcpy(out, host.data(), host.size() * sizeof(float));
      break;
    case kernels::DeviceDType::kBF16:
      for (size_t i = 0; i < host.size(); ++i) {
        const uint16_t b = F32ToBF16(host[i]);
        std::memcpy(out + 2 * i, &b, 2);
      }
      break;
  }
}

}  // namespace

absl::StatusOr<const void*> DeviceWeights::Put(const std::vector<float>& host) {
  return Put(host, dtype_);
}

absl::StatusOr<const void*> DeviceWeights::Put(const std::vector<float>& host,
                                               kernels::DeviceDType dtype) {
  if (host.empty()) return nullptr;
  const size_t bytes = host.size() * kernels::DeviceDTypeSize(dtype);
  void* dev = nullptr;
  RAMI_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&dev, bytes), "cudaMalloc"));
  allocations_.push_back(dev);
  bytes_ += static_cast<int64_t>(bytes);
  if (dtype == kernels::DeviceDType::kF32) {
    RAMI_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpy(dev, host.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy"));
    return dev;
  }
  std::vector<uint8_t> converted(bytes);
  Convert(host, dtype, converted.data());
  RAMI_RETURN_IF_ERROR(
      CudaStatus(cudaMemcpy(dev, converted.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy"));
  return dev;
}

absl::Status DeviceWeights::PutPacked(const std::vector<const std::vector<float>*>& parts,
                                      std::vector<const void*>* ptrs) {
  const size_t es = kernels::DeviceDTypeSize(dtype_);
  std::vector<size_t> offset(parts.size());
  size_t total = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    offset[i] = total;
    total += (parts[i]->size() * es + kPackAlign - 1) / kPackAlign * kPackAlign;
  }
  ptrs->assign(parts.size(), nullptr);
  if (total == 0) return absl::OkStatus();
  void* dev = nullptr;
  RAMI_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&dev, total), "cudaMalloc"));
  allocations_.push_back(dev);
  bytes_ += static_cast<int64_t>(total);
  // One part at a time through a host staging buffer (an expert of V3 is ~88 MB in fp32: no
  // copy of a whole layer on the host).
  std::vector<uint8_t> staged;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i]->empty()) continue;
    staged.resize(parts[i]->size() * es);
    Convert(*parts[i], dtype_, staged.data());
    char* at = static_cast<char*>(dev) + offset[i];
    RAMI_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpy(at, staged.data(), staged.size(), cudaMemcpyHostToDevice), "cudaMemcpy"));
    (*ptrs)[i] = at;
  }
  return absl::OkStatus();
}

absl::Status DeviceWeights::PutDeepseek(const ModelConfig& c, int layer, const LayerWeights& l,
                                        DeviceLayerWeights* x) {
  const MlaWeights& m = l.mla;
  // Host weights of another architecture under a DeepSeek config: nothing to run.
  if (m.q_b.empty() || m.kv_a.empty() || m.w_uk_t.empty() || m.w_uv.empty() ||
      c.moe.IsMoeLayer(layer) != !l.moe.router.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA backend: layer ", layer, " lacks the MLA",
                                                   c.moe.IsMoeLayer(layer) ? "/MoE" : "",
                                                   " weights of its DeepSeek config"));
  }
  RAMI_ASSIGN_OR_RETURN(x->mla.q_a, Put(m.q_a));
  RAMI_ASSIGN_OR_RETURN(x->mla.q_a_bias, Put(m.q_a_bias));
  RAMI_ASSIGN_OR_RETURN(x->mla.q_a_norm, Put(m.q_a_norm));
  RAMI_ASSIGN_OR_RETURN(x->mla.q_b, Put(m.q_b));
  RAMI_ASSIGN_OR_RETURN(x->mla.kv_a, Put(m.kv_a));
  RAMI_ASSIGN_OR_RETURN(x->mla.kv_a_bias, Put(m.kv_a_bias));
  RAMI_ASSIGN_OR_RETURN(x->mla.kv_a_norm, Put(m.kv_a_norm));
  RAMI_ASSIGN_OR_RETURN(x->mla.w_uk_t, Put(m.w_uk_t));
  RAMI_ASSIGN_OR_RETURN(x->mla.w_uv, Put(m.w_uv));
  const MoeWeights& moe = l.moe;
  if (!c.moe.IsMoeLayer(layer)) return absl::OkStatus();  // a dense layer: gate_up/down
  if (static_cast<int>(moe.experts.size()) != c.moe.num_experts) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA backend: an MoE layer of ",
                                                   moe.experts.size(), " experts, config has ",
                                                   c.moe.num_experts));
  }
  RAMI_ASSIGN_OR_RETURN(const void* router, Put(moe.router, kernels::DeviceDType::kF32));
  x->moe.router = static_cast<const float*>(router);
  RAMI_ASSIGN_OR_RETURN(const void* bias, Put(moe.correction_bias, kernels::DeviceDType::kF32));
  x->moe.correction_bias = static_cast<const float*>(bias);
  std::vector<const std::vector<float>*> gate_up, down;
  for (const ExpertWeights& e : moe.experts) {
    gate_up.push_back(&e.gate_up);
    down.push_back(&e.down);
  }
  RAMI_RETURN_IF_ERROR(PutPacked(gate_up, &x->moe.gate_up));
  RAMI_RETURN_IF_ERROR(PutPacked(down, &x->moe.down));
  RAMI_ASSIGN_OR_RETURN(x->moe.shared_gate_up, Put(moe.shared.gate_up));
  RAMI_ASSIGN_OR_RETURN(x->moe.shared_down, Put(moe.shared.down));
  return absl::OkStatus();
}

absl::Status DeviceWeights::PutTop(const ModelWeights& w) {
  RAMI_ASSIGN_OR_RETURN(embed_, Put(w.embed));
  lm_head_ = embed_;
  if (!w.lm_head.empty()) {
    RAMI_ASSIGN_OR_RETURN(lm_head_, Put(w.lm_head));
  }
  RAMI_ASSIGN_OR_RETURN(final_norm_, Put(w.final_norm));
  return absl::OkStatus();
}

absl::Status DeviceWeights::PutLayer(const ModelConfig& config, int layer, const LayerWeights& l) {
  if (layer != static_cast<int>(layers_.size())) {
    return absl::InternalError(absl::StrCat("device weights: layer ", layer, " out of order"));
  }
  DeviceLayerWeights x;
  RAMI_ASSIGN_OR_RETURN(x.input_norm, Put(l.input_norm));
  RAMI_ASSIGN_OR_RETURN(x.qkv, Put(l.qkv));
  RAMI_ASSIGN_OR_RETURN(x.qkv_bias, Put(l.qkv_bias));
  RAMI_ASSIGN_OR_RETURN(x.q_norm, Put(l.q_norm));
  RAMI_ASSIGN_OR_RETURN(x.k_norm, Put(l.k_norm));
  RAMI_ASSIGN_OR_RETURN(x.o_proj, Put(l.o_proj));
  RAMI_ASSIGN_OR_RETURN(x.o_bias, Put(l.o_bias));
  RAMI_ASSIGN_OR_RETURN(x.post_norm, Put(l.post_norm));
  RAMI_ASSIGN_OR_RETURN(x.gate_up, Put(l.gate_up));
  RAMI_ASSIGN_OR_RETURN(x.down, Put(l.down));
  RAMI_ASSIGN_OR_RETURN(x.dms_alpha, Put(l.dms_alpha));
  RAMI_ASSIGN_OR_RETURN(x.dms_alpha_bias, Put(l.dms_alpha_bias));
  RAMI_ASSIGN_OR_RETURN(x.dms_alpha_norm, Put(l.dms_alpha_norm));
  if (config.mla.enabled) RAMI_RETURN_IF_ERROR(PutDeepseek(config, layer, l, &x));
  layers_.push_back(std::move(x));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::Upload(const ModelConfig& config,
                                                                     const ModelWeights& w,
                                                                     kernels::DeviceDType dtype) {
  std::unique_ptr<DeviceWeights> d(new DeviceWeights(dtype));
  RAMI_RETURN_IF_ERROR(d->PutTop(w));
  for (int layer = 0; layer < static_cast<int>(w.layers.size()); ++layer) {
    RAMI_RETURN_IF_ERROR(d->PutLayer(config, layer, w.layers[layer]));
  }
  return d;
}

absl::StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::Load(
    const checkpoint::Checkpoint& checkpoint, const ModelConfig& config,
    const checkpoint::ShardSpec& shard, kernels::DeviceDType dtype) {
  std::unique_ptr<DeviceWeights> d(new DeviceWeights(dtype));
  RAMI_ASSIGN_OR_RETURN(
      const ModelWeights top,
      checkpoint::LoadWeightsByLayer(checkpoint, config, shard, [&](int layer, LayerWeights&& l) {
        return d->PutLayer(config, layer, l);  // then l goes
      }));
  RAMI_RETURN_IF_ERROR(d->PutTop(top));
  return d;
}

absl::StatusOr<const void*> DeviceWeights::PutFilled(int64_t count, TensorRole role,
                                                     const Filler& fill) {
  if (count <= 0) return nullptr;
  const size_t bytes = static_cast<size_t>(count) * kernels::DeviceDTypeSize(dtype_);
  void* dev = nullptr;
  RAMI_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&dev, bytes), "cudaMalloc"));
  allocations_.push_back(dev);
  bytes_ += static_cast<int64_t>(bytes);
  RAMI_RETURN_IF_ERROR(CudaStatus(fill(dev, static_cast<size_t>(count), role), "weights: fill"));
  return dev;
}

absl::StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::Allocate(const ModelConfig& c,
                                                                       const ShardDims& dims,
                                                                       kernels::DeviceDType dtype,
                                                                       const Filler& fill) {
  if (c.mla.enabled) {
    return absl::UnimplementedError(
        "DeviceWeights::Allocate: DeepSeek (MLA/MoE) is not supported; load the checkpoint and "
        "Upload its weights");
  }
  if (dims.q_heads < 1 || dims.kv_heads < 1 || dims.intermediate < 1 || dims.vocab < 1) {
    return absl::InvalidArgumentError("device weights: empty shard dims (use ShardDims::Make)");
  }
  const int64_t hidden = c.hidden_size, hd = c.head_dim;
  const int64_t qkv_rows = (int64_t{dims.q_heads} + 2 * dims.kv_heads) * hd;
  const int64_t q_cols = int64_t{dims.q_heads} * hd;
  const bool rank0 = dims.vocab_start == 0;  // o_proj's bias lives on rank 0 (weights.cc)
  const bool adapter = c.dms.enabled && c.dms.separate_alpha;
  std::unique_ptr<DeviceWeights> d(new DeviceWeights(dtype));
  auto put = [&](int64_t count, TensorRole role) { return d->PutFilled(count, role, fill); };
  constexpr TensorRole kMatrix = TensorRole::kMatrix, kBias = TensorRole::kBias,
                       kNorm = TensorRole::kNorm;
  RAMI_ASSIGN_OR_RETURN(d->embed_, put(int64_t{dims.vocab} * hidden, kBias));
  d->lm_head_ = d->embed_;
  if (!c.tie_word_embeddings) {
    RAMI_ASSIGN_OR_RETURN(d->lm_head_, put(int64_t{dims.vocab} * hidden, kMatrix));
  }
  RAMI_ASSIGN_OR_RETURN(d->final_norm_, put(hidden, kNorm));
  for (int layer = 0; layer < c.num_layers; ++layer) {
    DeviceLayerWeights x;
    RAMI_ASSIGN_OR_RETURN(x.input_norm, put(hidden, kNorm));
    RAMI_ASSIGN_OR_RETURN(x.qkv, put(qkv_rows * hidden, kMatrix));
    RAMI_ASSIGN_OR_RETURN(x.qkv_bias, put(c.qkv_bias ? qkv_rows : 0, kBias));
    RAMI_ASSIGN_OR_RETURN(x.q_norm, put(c.qk_norm ? hd : 0, kNorm));
    RAMI_ASSIGN_OR_RETURN(x.k_norm, put(c.qk_norm ? hd : 0, kNorm));
    RAMI_ASSIGN_OR_RETURN(x.o_proj, put(hidden * q_cols, kMatrix));
    RAMI_ASSIGN_OR_RETURN(x.o_bias, put(c.o_bias && rank0 ? hidden : 0, kBias));
    RAMI_ASSIGN_OR_RETURN(x.post_norm, put(hidden, kNorm));
    RAMI_ASSIGN_OR_RETURN(x.gate_up, put(2 * int64_t{dims.intermediate} * hidden, kMatrix));
    RAMI_ASSIGN_OR_RETURN(x.down, put(hidden * dims.intermediate, kMatrix));
    RAMI_ASSIGN_OR_RETURN(x.dms_alpha, put(adapter ? int64_t{dims.kv_heads} * hidden : 0, kMatrix));
    RAMI_ASSIGN_OR_RETURN(x.dms_alpha_bias,
                          put(adapter && c.dms.adapter_bias ? dims.kv_heads : 0, kBias));
    RAMI_ASSIGN_OR_RETURN(x.dms_alpha_norm, put(adapter ? hidden : 0, kNorm));
    d->layers_.push_back(x);
  }
  // The fills ran on the legacy stream; the model's streams are non-blocking: wait here.
  RAMI_RETURN_IF_ERROR(CudaStatus(cudaDeviceSynchronize(), "device weights: fill"));
  return d;
}

absl::Status DeviceWeights::CheckComplete(const ModelConfig& c) const {
  auto missing = [](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat("CUDA backend: device weights lack ", what));
  };
  if (num_layers() != c.num_layers) {
    return missing(absl::StrCat("layers (", num_layers(), " of ", c.num_layers, ")"));
  }
  if (embed_ == nullptr) return missing("the embedding");
  if (lm_head_ == nullptr) return missing("the LM head");
  if (final_norm_ == nullptr) return missing("the final norm");
  const bool adapter = c.dms.enabled && c.dms.separate_alpha;
  const bool mla = c.mla.enabled, q_lora = c.mla.q_lora_rank > 0, bias = c.mla.attention_bias;
  for (int i = 0; i < num_layers(); ++i) {
    const DeviceLayerWeights& w = layers_[i];
    const bool moe = c.moe.IsMoeLayer(i);
    const bool shared = moe && c.moe.num_shared_experts > 0;
    const struct {
      const char* name;
      const void* ptr;
      bool needed;
    } tensors[] = {{"input_norm", w.input_norm, true},
                   {"qkv", w.qkv, !mla},
                   {"qkv_bias", w.qkv_bias, !mla && c.qkv_bias},
                   {"q_norm", w.q_norm, !mla && c.qk_norm},
                   {"k_norm", w.k_norm, !mla && c.qk_norm},
                   {"o_proj", w.o_proj, true},
                   {"post_norm", w.post_norm, true},
                   {"gate_up", w.gate_up, !moe},
                   {"down", w.down, !moe},
                   {"dms_alpha", w.dms_alpha, adapter},
                   {"dms_alpha_bias", w.dms_alpha_bias, adapter && c.dms.adapter_bias},
                   {"dms_alpha_norm", w.dms_alpha_norm, adapter},
                   {"q_a_proj", w.mla.q_a, mla && q_lora},
                   {"q_a_proj bias", w.mla.q_a_bias, mla && q_lora && bias},
                   {"q_a_layernorm", w.mla.q_a_norm, mla && q_lora},
                   {"q_b_proj (q_proj)", w.mla.q_b, mla},
                   {"kv_a_proj_with_mqa", w.mla.kv_a, mla},
                   {"kv_a_proj_with_mqa bias", w.mla.kv_a_bias, mla && bias},
                   {"kv_a_layernorm", w.mla.kv_a_norm, mla},
                   {"kv_b_proj's W_uk", w.mla.w_uk_t, mla},
                   {"kv_b_proj's W_uv", w.mla.w_uv, mla},
                   {"the MoE router", w.moe.router, moe},
                   {"e_score_correction_bias", w.moe.correction_bias, moe && c.moe.correction_bias},
                   {"the shared experts' gate_up", w.moe.shared_gate_up, shared},
                   {"the shared experts' down", w.moe.shared_down, shared}};
    for (const auto& t : tensors) {
      if (t.needed && t.ptr == nullptr) return missing(absl::StrCat("layer ", i, "'s ", t.name));
    }
    if (!moe) continue;
    if (static_cast<int>(w.moe.gate_up.size()) != c.moe.num_experts ||
        static_cast<int>(w.moe.down.size()) != c.moe.num_experts) {
      return missing(absl::StrCat("layer ", i, "'s experts (", w.moe.gate_up.size(), " of ",
                                  c.moe.num_experts, ")"));
    }
    for (int e = 0; e < c.moe.num_experts; ++e) {
      if (w.moe.gate_up[e] == nullptr || w.moe.down[e] == nullptr) {
        return missing(absl::StrCat("layer ", i, "'s expert ", e));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> DevicePoolPages(double fraction, int64_t page_bytes) {
  if (!(fraction > 0 && fraction <= 1) || page_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device pool: fraction ", fraction, ", page bytes ", page_bytes));
  }
  size_t free_bytes = 0, total_bytes = 0;
  RAMI_RETURN_IF_ERROR(CudaStatus(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"));
  const int64_t pages =
      static_cast<int64_t>(static_cast<double>(free_bytes) * fraction) / page_bytes;
  if (pages < 1) {
    return absl::ResourceExhaustedError(
        absl::StrCat("device pool: ", free_bytes, " bytes free hold no page of ", page_bytes));
  }
  return pages;
}

}  // namespace rami::cuda
