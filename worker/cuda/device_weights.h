// DeviceWeights: one rank's shard of a Llama-family model (ModelWeights, already sliced for
// tensor parallelism by the CPU loader) copied to the device in the compute dtype — bf16 for
// production (rounded to nearest even on the host, as __float2bfloat16_rn) or fp32 for the
// exactness mode. Norm weights and biases are in the same dtype (the kernels read them so).
// Owns every allocation; null pointers mark tensors the model does not have.
// DeepSeek (MLA, MoE) is not uploaded yet: Upload refuses it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda/device_dtype.h"
#include "worker/model_config.h"
#include "worker/weights.h"

namespace rami::cuda {

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
};

class DeviceWeights {
 public:
  static absl::StatusOr<std::unique_ptr<DeviceWeights>> Upload(const ModelConfig& config,
                                                               const ModelWeights& weights,
                                                               kernels::DeviceDType dtype);
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

 private:
  explicit DeviceWeights(kernels::DeviceDType dtype) : dtype_(dtype) {}
  // Copies `host` in the dtype to a new allocation; null for an empty tensor.
  absl::StatusOr<const void*> Put(const std::vector<float>& host);

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
