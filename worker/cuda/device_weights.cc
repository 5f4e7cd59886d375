// Upload of a rank's weight shard to the device, or random weights of its shape made there;
// see device_weights.h.
#include "worker/cuda/device_weights.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/cuda/cuda_status.h"
#include "worker/cuda/random_fill.h"
#include "worker/dtype.h"

namespace rami::cuda {

DeviceWeights::~DeviceWeights() {
  for (void* p : allocations_) cudaFree(p);
}

absl::StatusOr<const void*> DeviceWeights::Put(const std::vector<float>& host) {
  if (host.empty()) return nullptr;
  const size_t n = host.size();
  const size_t bytes = n * kernels::DeviceDTypeSize(dtype_);
  void* dev = nullptr;
  RAMI_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&dev, bytes), "cudaMalloc"));
  allocations_.push_back(dev);
  bytes_ += static_cast<int64_t>(bytes);
  switch (dtype_) {
    case kernels::DeviceDType::kF32:
      RAMI_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpy(dev, host.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy"));
      break;
    case kernels::DeviceDType::kBF16: {
      std::vector<uint16_t> converted(n);
      for (size_t i = 0; i < n; ++i) converted[i] = F32ToBF16(host[i]);
      RAMI_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpy(dev, converted.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy"));
      break;
    }
  }
  return dev;
}

absl::StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::Upload(const ModelConfig& config,
                                                                     const ModelWeights& w,
                                                                     kernels::DeviceDType dtype) {
  if (config.mla.enabled) {
    return absl::UnimplementedError("CUDA backend: DeepSeek (MLA/MoE) weights are not uploaded");
  }
  std::unique_ptr<DeviceWeights> d(new DeviceWeights(dtype));
  RAMI_ASSIGN_OR_RETURN(d->embed_, d->Put(w.embed));
  d->lm_head_ = d->embed_;
  if (!w.lm_head.empty()) {
    RAMI_ASSIGN_OR_RETURN(d->lm_head_, d->Put(w.lm_head));
  }
  RAMI_ASSIGN_OR_RETURN(d->final_norm_, d->Put(w.final_norm));
  for (const LayerWeights& l : w.layers) {
    DeviceLayerWeights x;
    RAMI_ASSIGN_OR_RETURN(x.input_norm, d->Put(l.input_norm));
    RAMI_ASSIGN_OR_RETURN(x.qkv, d->Put(l.qkv));
    RAMI_ASSIGN_OR_RETURN(x.qkv_bias, d->Put(l.qkv_bias));
    RAMI_ASSIGN_OR_RETURN(x.q_norm, d->Put(l.q_norm));
    RAMI_ASSIGN_OR_RETURN(x.k_norm, d->Put(l.k_norm));
    RAMI_ASSIGN_OR_RETURN(x.o_proj, d->Put(l.o_proj));
    RAMI_ASSIGN_OR_RETURN(x.o_bias, d->Put(l.o_bias));
    RAMI_ASSIGN_OR_RETURN(x.post_norm, d->Put(l.post_norm));
    RAMI_ASSIGN_OR_RETURN(x.gate_up, d->Put(l.gate_up));
    RAMI_ASSIGN_OR_RETURN(x.down, d->Put(l.down));
    RAMI_ASSIGN_OR_RETURN(x.dms_alpha, d->Put(l.dms_alpha));
    RAMI_ASSIGN_OR_RETURN(x.dms_alpha_bias, d->Put(l.dms_alpha_bias));
    RAMI_ASSIGN_OR_RETURN(x.dms_alpha_norm, d->Put(l.dms_alpha_norm));
    d->layers_.push_back(x);
  }
  return d;
}

absl::StatusOr<const void*> DeviceWeights::PutRandom(int64_t count, uint64_t seed, float center,
                                                     float half_width) {
  if (count <= 0) return nullptr;
  const size_t bytes = static_cast<size_t>(count) * kernels::DeviceDTypeSize(dtype_);
  void* dev = nullptr;
  RAMI_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&dev, bytes), "cudaMalloc"));
  allocations_.push_back(dev);
  bytes_ += static_cast<int64_t>(bytes);
  // The legacy default stream: Random synchronizes the device once every tensor is enqueued.
  RAMI_RETURN_IF_ERROR(CudaStatus(FillUniformCuda(dev, dtype_, static_cast<size_t>(count), seed,
                                                  center, half_width, /*stream=*/nullptr),
                                  "FillUniformCuda"));
  return dev;
}

absl::StatusOr<std::unique_ptr<DeviceWeights>> DeviceWeights::Random(const ModelConfig& c,
                                                                     const ShardDims& dims,
                                                                     kernels::DeviceDType dtype,
                                                                     uint64_t seed) {
  if (c.mla.enabled) {
    return absl::UnimplementedError("CUDA backend: DeepSeek (MLA/MoE) weights are not made");
  }
  if (dims.q_heads < 1 || dims.kv_heads < 1 || dims.intermediate < 1 || dims.vocab < 1) {
    return absl::InvalidArgumentError("random weights: empty shard dims (use ShardDims::Make)");
  }
  constexpr float kScale = 0.02f;  // matrices, embedding, biases: uniform in ±kScale
  constexpr float kNorm = 1.0f;    // norm weights: kNorm ± kScale
  const int64_t hidden = c.hidden_size, hd = c.head_dim;
  const int64_t qkv_rows = (int64_t{dims.q_heads} + 2 * dims.kv_heads) * hd;
  const int64_t q_cols = int64_t{dims.q_heads} * hd;
  const bool rank0 = dims.vocab_start == 0;  // o_proj's bias lives on rank 0 (weights.cc)
  const bool adapter = c.dms.enabled && c.dms.separate_alpha;
  std::unique_ptr<DeviceWeights> d(new DeviceWeights(dtype));
  uint64_t tensor = 0;  // every tensor its own seed, in a fixed order
  auto put = [&](int64_t count, float center) {
    return d->PutRandom(count, TensorSeed(seed, tensor++), center, kScale);
  };
  RAMI_ASSIGN_OR_RETURN(d->embed_, put(int64_t{dims.vocab} * hidden, 0));
  d->lm_head_ = d->embed_;
  if (!c.tie_word_embeddings) {
    RAMI_ASSIGN_OR_RETURN(d->lm_head_, put(int64_t{dims.vocab} * hidden, 0));
  }
  RAMI_ASSIGN_OR_RETURN(d->final_norm_, put(hidden, kNorm));
  for (int layer = 0; layer < c.num_layers; ++layer) {
    DeviceLayerWeights x;
    RAMI_ASSIGN_OR_RETURN(x.input_norm, put(hidden, kNorm));
    RAMI_ASSIGN_OR_RETURN(x.qkv, put(qkv_rows * hidden, 0));
    RAMI_ASSIGN_OR_RETURN(x.qkv_bias, put(c.qkv_bias ? qkv_rows : 0, 0));
    RAMI_ASSIGN_OR_RETURN(x.q_norm, put(c.qk_norm ? hd : 0, kNorm));
    RAMI_ASSIGN_OR_RETURN(x.k_norm, put(c.qk_norm ? hd : 0, kNorm));
    RAMI_ASSIGN_OR_RETURN(x.o_proj, put(hidden * q_cols, 0));
    RAMI_ASSIGN_OR_RETURN(x.o_bias, put(c.o_bias && rank0 ? hidden : 0, 0));
    RAMI_ASSIGN_OR_RETURN(x.post_norm, put(hidden, kNorm));
    RAMI_ASSIGN_OR_RETURN(x.gate_up, put(2 * int64_t{dims.intermediate} * hidden, 0));
    RAMI_ASSIGN_OR_RETURN(x.down, put(hidden * dims.intermediate, 0));
    RAMI_ASSIGN_OR_RETURN(x.dms_alpha, put(adapter ? int64_t{dims.kv_heads} * hidden : 0, 0));
    RAMI_ASSIGN_OR_RETURN(x.dms_alpha_bias,
                          put(adapter && c.dms.adapter_bias ? dims.kv_heads : 0, 0));
    RAMI_ASSIGN_OR_RETURN(x.dms_alpha_norm, put(adapter ? hidden : 0, kNorm));
    d->layers_.push_back(x);
  }
  // The fills ran on the legacy stream; the model's streams are non-blocking: wait here.
  RAMI_RETURN_IF_ERROR(CudaStatus(cudaDeviceSynchronize(), "random weights: fill"));
  return d;
}

absl::Status DeviceWeights::CheckComplete(const ModelConfig& c) const {
  auto missing = [](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat(
        "CUDA backend: device weights lack ", what,
        " (a Model::ShapeOnly has no host weights: bring DeviceWeights, e.g. Random)"));
  };
  if (c.mla.enabled) return absl::UnimplementedError("CUDA backend: DeepSeek (MLA/MoE) weights");
  if (num_layers() != c.num_layers) {
    return missing(absl::StrCat("layers (", num_layers(), " of ", c.num_layers, ")"));
  }
  if (embed_ == nullptr) return missing("the embedding");
  if (lm_head_ == nullptr) return missing("the LM head");
  if (final_norm_ == nullptr) return missing("the final norm");
  const bool adapter = c.dms.enabled && c.dms.separate_alpha;
  for (int i = 0; i < num_layers(); ++i) {
    const DeviceLayerWeights& w = layers_[i];
    const struct {
      const char* name;
      const void* ptr;
      bool needed;
    } tensors[] = {{"input_norm", w.input_norm, true},
                   {"qkv", w.qkv, true},
                   {"qkv_bias", w.qkv_bias, c.qkv_bias},
                   {"q_norm", w.q_norm, c.qk_norm},
                   {"k_norm", w.k_norm, c.qk_norm},
                   {"o_proj", w.o_proj, true},
                   {"post_norm", w.post_norm, true},
                   {"gate_up", w.gate_up, true},
                   {"down", w.down, true},
                   {"dms_alpha", w.dms_alpha, adapter},
                   {"dms_alpha_bias", w.dms_alpha_bias, adapter && c.dms.adapter_bias},
                   {"dms_alpha_norm", w.dms_alpha_norm, adapter}};
    for (const auto& t : tensors) {
      if (t.needed && t.ptr == nullptr) return missing(absl::StrCat("layer ", i, "'s ", t.name));
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
