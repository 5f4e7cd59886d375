// RandomDeviceWeights: DeviceWeights::Allocate with a uniform fill per tensor.
#include "tools/bench_weights.h"

#include "tools/random_fill.h"

namespace rami::bench {

absl::StatusOr<std::unique_ptr<cuda::DeviceWeights>> RandomDeviceWeights(
    const checkpoint::ModelConfig& config, const checkpoint::ShardDims& dims,
    kernels::DeviceDType dtype, uint64_t seed) {
  constexpr float kScale = 0.02f;  // matrices, embedding, biases: uniform in ±kScale
  constexpr float kNorm = 1.0f;    // norm weights: kNorm ± kScale
  uint64_t tensor = 0;             // every tensor its own seed, in Allocate's fixed order
  return cuda::DeviceWeights::Allocate(
      config, dims, dtype, [&](void* data, size_t count, cuda::DeviceWeights::TensorRole role) {
        const float center = role == cuda::DeviceWeights::TensorRole::kNorm ? kNorm : 0.0f;
        // The legacy default stream: Allocate synchronizes the device after the last fill.
        return FillUniformCuda(data, dtype, count, TensorSeed(seed, tensor++), center, kScale,
                               /*stream=*/nullptr);
      });
}

}  // namespace rami::bench
