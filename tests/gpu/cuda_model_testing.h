// A CudaModel and its cache over a golden model directory, for the GPU tests that compare two
// configurations of the CUDA backend (graphs vs eager launches, device vs host sampling).
#pragma once

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "worker/cpu/model.h"
#include "worker/cuda/cuda_model.h"

namespace rami::gpu_test {

using cpu::Model;
using kv::CachePolicy;
using kv::KvCache;

struct CudaModelAndCache {
  std::unique_ptr<cuda::CudaModel> model;  // null when a step of the setup failed
  std::unique_ptr<KvCache> cache;
};

// The golden `name` (tests/golden/models) on the device with `options`, its default cache
// policy, pages of 16 tokens and 2 % of the free device memory. Failures are test failures.
inline CudaModelAndCache MakeCudaModel(const std::string& name,
                                       const cuda::CudaModelOptions& options) {
  const std::string dir = std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/" + name;
  absl::StatusOr<std::unique_ptr<Model>> cpu = Model::Load(dir, {});
  EXPECT_TRUE(cpu.ok()) << cpu.status();
  if (!cpu.ok()) return {};
  const CachePolicy policy = (*cpu)->shape().DefaultCachePolicy();
  absl::StatusOr<std::unique_ptr<cuda::CudaModel>> model =
      cuda::CudaModel::Create((*cpu)->shape(), (*cpu)->weights(), options);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  absl::StatusOr<std::unique_ptr<KvCache>> cache = (*model)->MakeCache(16, policy, 0.02);
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return {};
  return {std::move(*model), std::move(*cache)};
}

}  // namespace rami::gpu_test
