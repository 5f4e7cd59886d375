// Upload of a rank's weight shard to the device; see device_weights.h.
#include "worker/cuda/device_weights.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "worker/cuda/cuda_status.h"
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
