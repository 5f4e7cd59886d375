// Strided RoPE (kernels/cuda/rope.h): the CUDA kernel against RopeCpu on the gathered blocks,
// rotate-half and interleaved, in fp32 and bf16, dims 8 and 64, 1 and 16 heads, positions up to
// 40000, in MLA's layouts (the rope tail of each q head, the rope tail of the latent row) and
// odd paddings. Elements outside the rotated blocks must come back bitwise untouched. The
// GPU cases skip without a device; parameter validation runs everywhere.
#include "kernels/cuda/rope.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "kernels/rope.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;
using kernels::DeviceDType;

// inv_freq_i = theta^(−2i/dim) (DeepSeek's rope_theta = 10000).
std::vector<float> InvFreq(int dim) {
  std::vector<float> inv_freq(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    inv_freq[i] = static_cast<float>(1.0 / std::pow(10000.0, 2.0 * i / dim));
  }
  return inv_freq;
}

// Where the rotated blocks sit: the block of token t, head h starts at
// t·token_stride + h·head_stride + offset.
struct Layout {
  const char* name;
  int64_t token_stride, head_stride;
  int offset;
};

// Layouts for `heads` blocks of `dim`: dense, MLA's q heads [nope | rope] with the rope part at
// the end of each head, MLA's latent row [lora | rope] (one head), and odd paddings.
std::vector<Layout> Layouts(int heads, int dim) {
  const int nope = dim == 64 ? 128 : 16;
  std::vector<Layout> layouts = {
      {"dense", static_cast<int64_t>(heads) * dim, dim, 0},
      {"mla q", static_cast<int64_t>(heads) * (nope + dim), nope + dim, nope},
      {"padded", static_cast<int64_t>(heads) * (dim + 5) + 3, dim + 5, 3},
  };
  if (heads == 1) layouts.push_back({"mla latent", 512 + dim, 0, 512});
  return layouts;
}

TEST(RopeGpu, MatchesCpuTwinOnGatheredBlocks) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int32_t> position(0, 40000);
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int dim : {8, 64}) {
      for (int heads : {1, 16}) {
        for (const Layout& layout : Layouts(heads, dim)) {
          for (bool interleaved : {false, true}) {
            for (int tokens : {1, 3, 17}) {
              const float attention_scale = interleaved ? 1.2f : 1.0f;  // YaRN's mscale or none
              const std::vector<float> inv_freq = InvFreq(dim);
              std::vector<int32_t> positions(tokens);
              for (int32_t& p : positions) p = position(rng);
              positions[0] = 40000;
              // The whole buffer; the last block ends inside the last token's row.
              const size_t size = static_cast<size_t>(tokens) * layout.token_stride;
              std::vector<float> x(size);
              for (float& v : x) v = normal(rng);
              x = gpu_test::Quantize(x, dtype);

              // The reference: gather the blocks, RopeCpu, scatter back; the rest unchanged.
              const auto at = [&](int t, int h, int j) {
                return t * layout.token_stride + h * layout.head_stride + layout.offset + j;
              };
              std::vector<float> blocks(static_cast<size_t>(tokens) * heads * dim);
              std::vector<bool> rotated(size, false);
              for (int t = 0; t < tokens; ++t) {
                for (int h = 0; h < heads; ++h) {
                  for (int j = 0; j < dim; ++j) {
                    blocks[(static_cast<size_t>(t) * heads + h) * dim + j] = x[at(t, h, j)];
                    rotated[at(t, h, j)] = true;
                  }
                }
              }
              kernels::RopeCpu({.x = blocks.data(),
                                .positions = positions.data(),
                                .inv_freq = inv_freq.data(),
                                .num_tokens = tokens,
                                .num_heads = heads,
                                .head_dim = dim,
                                .attention_scale = attention_scale,
                                .interleaved = interleaved});

              DeviceArray<uint8_t> dx(gpu_test::Encode(x, dtype));
              DeviceArray<int32_t> dpos(positions);
              DeviceArray<float> dfreq(inv_freq);
              ASSERT_EQ(kernels::RopeCuda({.x = dx.get(),
                                           .positions = dpos.get(),
                                           .inv_freq = dfreq.get(),
                                           .num_tokens = tokens,
                                           .heads = heads,
                                           .token_stride = layout.token_stride,
                                           .head_stride = layout.head_stride,
                                           .offset = layout.offset,
                                           .dim = dim,
                                           .attention_scale = attention_scale,
                                           .interleaved = interleaved,
                                           .dtype = dtype},
                                          nullptr),
                        cudaSuccess);
              ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
              const std::vector<float> got = gpu_test::Decode(dx.ToHost(), dtype);

              const std::string what = std::string(gpu_test::Name(dtype)) + " " + layout.name +
                                       " dim " + std::to_string(dim) + " heads " +
                                       std::to_string(heads) + " tokens " + std::to_string(tokens) +
                                       (interleaved ? " interleaved" : " rotate-half");
              std::vector<float> got_blocks(blocks.size()), got_rest, want_rest;
              for (int t = 0; t < tokens; ++t) {
                for (int h = 0; h < heads; ++h) {
                  for (int j = 0; j < dim; ++j) {
                    got_blocks[(static_cast<size_t>(t) * heads + h) * dim + j] = got[at(t, h, j)];
                  }
                }
              }
              for (size_t i = 0; i < size; ++i) {
                if (rotated[i]) continue;
                got_rest.push_back(got[i]);
                want_rest.push_back(x[i]);
              }
              // fp32: the same operations as RopeCpu, so only sincosf's last bits (≤ 2 ulp)
              // differ. bf16: those bits may move the result's rounding by one bf16 ulp.
              const testing::Tolerance tol = dtype == DeviceDType::kF32
                                                 ? testing::Tolerance{.atol = 1e-5, .rtol = 1e-5}
                                                 : testing::Tolerance{.atol = 1e-4, .rtol = 1e-2};
              const std::vector<float> want_blocks = gpu_test::Quantize(blocks, dtype);
              EXPECT_TRUE(testing::AllClose(got_blocks, want_blocks, tol, what));
              EXPECT_TRUE(
                  testing::AllClose(got_rest, want_rest, {.bitwise = true}, what + " untouched"));
            }
          }
        }
      }
    }
  }
}

// Bad parameters are refused before any launch, so this runs without a device too.
TEST(RopeGpu, RejectsBadParams) {
  int32_t position = 0;
  float inv_freq = 1.0f, x = 0.0f;
  const kernels::RopeCudaParams good = {.x = &x,
                                        .positions = &position,
                                        .inv_freq = &inv_freq,
                                        .num_tokens = 1,
                                        .heads = 1,
                                        .token_stride = 2,
                                        .head_stride = 2,
                                        .dim = 2,
                                        .dtype = DeviceDType::kF32};
  kernels::RopeCudaParams p = good;
  p.dim = 3;  // odd
  EXPECT_EQ(kernels::RopeCuda(p, nullptr), cudaErrorInvalidValue);
  p = good;
  p.dim = 0;
  EXPECT_EQ(kernels::RopeCuda(p, nullptr), cudaErrorInvalidValue);
  p = good;
  p.offset = -1;
  EXPECT_EQ(kernels::RopeCuda(p, nullptr), cudaErrorInvalidValue);
  p = good;
  p.num_tokens = -1;
  EXPECT_EQ(kernels::RopeCuda(p, nullptr), cudaErrorInvalidValue);
  p = good;
  p.inv_freq = nullptr;
  EXPECT_EQ(kernels::RopeCuda(p, nullptr), cudaErrorInvalidValue);
  p = good;
  p.num_tokens = 0;  // nothing to do, no launch
  EXPECT_EQ(kernels::RopeCuda(p, nullptr), cudaSuccess);
}

}  // namespace
}  // namespace rami
