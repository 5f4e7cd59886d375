// A CudaModel and its cache over a golden model directory, for the GPU tests that compare two
// configurations of the CUDA backend (graphs vs eager launches, device vs host sampling).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "worker/cpu/model.h"
#include "worker/cuda/cuda_model.h"

namespace rami::gpu_test {

// The GPU tests' caches: steps of up to 1024 tokens and 32 sequences reserved at load (larger
// ones grow their buffers), a pool of 4096 pages whatever the device's memory.
inline constexpr cuda::CudaCacheOptions kTestCache = {
    .page_size = 16,
    .limits = {.max_step_tokens = 1024, .max_step_sequences = 32},
    .max_pages = 4096};

using cpu::Model;
using kv::CachePolicy;
using kv::KvCache;

struct CudaModelAndCache {
  std::unique_ptr<cuda::CudaModel> model;  // null when a step of the setup failed
  std::unique_ptr<KvCache> cache;
};

// The golden `name` (tests/golden/models) on the device with `options`, `policy` (unset: its
// default cache policy), pages of 16 tokens and a pool of kTestCache.max_pages. Failures are test
// failures.
inline CudaModelAndCache MakeCudaModel(const std::string& name,
                                       const cuda::CudaModelOptions& options,
                                       std::optional<CachePolicy> policy = std::nullopt) {
  const std::string dir = rami::testing::GoldenModelDir(name);
  absl::StatusOr<std::unique_ptr<Model>> cpu = Model::Load(dir, {});
  EXPECT_TRUE(cpu.ok()) << cpu.status();
  if (!cpu.ok()) return {};
  if (!policy.has_value()) policy = (*cpu)->shape().DefaultCachePolicy();
  absl::StatusOr<std::unique_ptr<cuda::CudaModel>> model =
      cuda::CudaModel::Create((*cpu)->shape(), (*cpu)->weights(), options);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return {};
  absl::StatusOr<std::unique_ptr<KvCache>> cache = (*model)->MakeCache(*policy, kTestCache);
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return {};
  return {std::move(*model), std::move(*cache)};
}

}  // namespace rami::gpu_test
