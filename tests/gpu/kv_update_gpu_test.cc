// KV cache updates: the write of new tokens into their window slots (with the one-token shift
// of the DMS flags) against KvWriteCpu, and the per-step slot copies (promotions, fork tail
// copies) against KvCopyCpu, bitwise, in fp32 and bf16, over several page sizes; padding
// tokens (stream −1) write nothing. Skips without a GPU.
#include <algorithm>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/kv_copy.h"
#include "kernels/paged_attention.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"

namespace rami {
namespace {

using gpu_test::DeviceArray;
using kernels::DeviceDType;

// The KV write tests' cache: window-only streams (no kept pages) of kHeads KV heads per
// sequence, each stream a window of kWindowPages pages, W = kWindow.
constexpr int kHeads = 4, kWindowPages = 40, kWindow = 4;

// One step's K/V write into a window-only cache: stream s's window starts at window_base[s]
// on pages s·kWindowPages … (s + 1)·kWindowPages − 1 of a shuffled page table, with every flag
// 0; the pools, k and v are N(0, 1) values as the device holds them and α random, 1 for the
// padding tokens (stream −1). WriteCpu runs the CPU twin into host copies (k_cpu, v_cpu,
// flags_cpu), WriteCuda the kernel into device copies, read back into gpu_k_pool, gpu_v_pool
// (bytes of `dtype`) and gpu_flags.
struct KvWriteStep {
  KvWriteStep(DeviceDType type, int page_size, int head_dim, std::vector<int32_t> base,
              std::vector<int32_t> streams, std::vector<int32_t> pos, std::mt19937& rng,
              std::normal_distribution<float>& normal)
      : dtype(type),
        page_size(page_size),
        head_dim(head_dim),
        num_streams(static_cast<int>(base.size())),
        num_tokens(static_cast<int>(pos.size())),
        window_base(std::move(base)),
        token_stream(std::move(streams)),
        positions(std::move(pos)) {
    const int slots = kWindowPages * page_size;
    page_table.resize(static_cast<size_t>(num_streams) * kWindowPages);
    std::iota(page_table.begin(), page_table.end(), 0);
    std::shuffle(page_table.begin(), page_table.end(), rng);
    window_page_start.resize(num_streams);
    flag_start.resize(num_streams);
    zeros.assign(num_streams, 0);
    for (int s = 0; s < num_streams; ++s) {
      window_page_start[s] = s * kWindowPages;
      flag_start[s] = s * slots;
    }
    const size_t pool_elems = page_table.size() * page_size * head_dim;
    k_pool.resize(pool_elems);
    v_pool.resize(pool_elems);
    k.resize(static_cast<size_t>(num_tokens) * kHeads * head_dim);
    v.resize(k.size());
    for (auto* vec : {&k_pool, &v_pool, &k, &v}) {
      for (float& x : *vec) x = normal(rng);
      *vec = gpu_test::Quantize(*vec, dtype);
    }
    alpha.resize(static_cast<size_t>(num_tokens) * kHeads);
    for (int t = 0; t < num_tokens; ++t) {
      for (int h = 0; h < kHeads; ++h) {
        alpha[t * kHeads + h] = token_stream[t] < 0 ? 1 : rng() % 2;
      }
    }
    flags.assign(static_cast<size_t>(num_streams) * slots, 0);
    k_cpu = k_pool;
    v_cpu = v_pool;
    flags_cpu = flags;
  }

  // KvWriteCpu over the real tokens alone (their k/v/α rows compacted; all of them when there
  // is no padding) into k_cpu, v_cpu and flags_cpu.
  void WriteCpu() {
    std::vector<int32_t> real_stream, real_pos;
    std::vector<float> real_k, real_v;
    std::vector<uint8_t> real_alpha;
    const size_t row = static_cast<size_t>(kHeads) * head_dim;
    for (int t = 0; t < num_tokens; ++t) {
      if (token_stream[t] < 0) continue;
      real_stream.push_back(token_stream[t]);
      real_pos.push_back(positions[t]);
      real_k.insert(real_k.end(), k.begin() + t * row, k.begin() + (t + 1) * row);
      real_v.insert(real_v.end(), v.begin() + t * row, v.begin() + (t + 1) * row);
      real_alpha.insert(real_alpha.end(), alpha.begin() + t * kHeads,
                        alpha.begin() + (t + 1) * kHeads);
    }
    std::vector<uint8_t*> flag_ptrs(num_streams);
    for (int s = 0; s < num_streams; ++s) flag_ptrs[s] = flags_cpu.data() + flag_start[s];
    kernels::KvWriteCpu({.cache = {.k_pool = k_cpu.data(),
                                   .v_pool = v_cpu.data(),
                                   .page_table = page_table.data(),
                                   .kept_page_start = zeros.data(),
                                   .kept_count = zeros.data(),
                                   .window_page_start = window_page_start.data(),
                                   .window_base = window_base.data(),
                                   .window_start = window_base.data(),
                                   .window_flags = flag_ptrs.data(),
                                   .page_size = page_size,
                                   .head_dim = head_dim,
                                   .window = kWindow},
                         .k = real_k.data(),
                         .v = real_v.data(),
                         .alpha = real_alpha.data(),
                         .token_stream = real_stream.data(),
                         .positions = real_pos.data(),
                         .num_tokens = static_cast<int>(real_pos.size()),
                         .num_kv_heads = kHeads});
  }

  // KvWriteCuda over every token (padding included) into device copies of the initial pools
  // and flags, synchronized, then read back; k_only: no V rows and no V pool (MLA's cache),
  // gpu_v_pool left empty. Wrap the call in ASSERT_NO_FATAL_FAILURE.
  void WriteCuda(bool k_only = false) {
    DeviceArray<uint8_t> dk_pool(gpu_test::Encode(k_pool, dtype));
    DeviceArray<uint8_t> dv_pool(gpu_test::Encode(v_pool, dtype));
    DeviceArray<uint8_t> dk(gpu_test::Encode(k, dtype)), dv(gpu_test::Encode(v, dtype));
    DeviceArray<int32_t> dtable(page_table), dwps(window_page_start), dbase(window_base);
    DeviceArray<int32_t> dzeros(zeros), dflag_start(flag_start), dstream(token_stream);
    DeviceArray<int32_t> dpos(positions);
    DeviceArray<uint8_t> dflags(flags), dalpha(alpha);
    ASSERT_EQ(kernels::KvWriteCuda({.cache = {.k_pool = dk_pool.get(),
                                              .v_pool = k_only ? nullptr : dv_pool.get(),
                                              .page_table = dtable.get(),
                                              .kept_page_start = dzeros.get(),
                                              .kept_count = dzeros.get(),
                                              .window_page_start = dwps.get(),
                                              .window_base = dbase.get(),
                                              .window_start = dbase.get(),
                                              .flags = dflags.get(),
                                              .flag_start = dflag_start.get(),
                                              .page_size = page_size,
                                              .head_dim = head_dim,
                                              .window = kWindow,
                                              .dtype = dtype},
                                    .k = dk.get(),
                                    .v = k_only ? nullptr : dv.get(),
                                    .alpha = dalpha.get(),
                                    .token_stream = dstream.get(),
                                    .positions = dpos.get(),
                                    .num_tokens = num_tokens,
                                    .num_kv_heads = kHeads},
                                   nullptr),
              cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    gpu_k_pool = dk_pool.ToHost();
    if (!k_only) gpu_v_pool = dv_pool.ToHost();
    gpu_flags = dflags.ToHost();
  }

  const DeviceDType dtype;
  const int page_size, head_dim, num_streams, num_tokens;
  const std::vector<int32_t> window_base, token_stream, positions;
  std::vector<int32_t> page_table, window_page_start, flag_start, zeros;
  std::vector<float> k_pool, v_pool, k, v;  // initial pools; the step's rows
  std::vector<uint8_t> alpha, flags;        // flags: initial
  std::vector<float> k_cpu, v_cpu;          // after WriteCpu
  std::vector<uint8_t> flags_cpu;
  std::vector<uint8_t> gpu_k_pool, gpu_v_pool, gpu_flags;  // after WriteCuda
};

TEST(KvWriteGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int page_size : {1, 16, 64}) {
      for (int head_dim : {64, 128}) {
        // Three sequences (streams s·H + h), each appending a chunk at its own position.
        const std::vector<int32_t> start = {0, 37, 600}, count = {17, 1, 7};
        std::vector<int32_t> window_base(3 * kHeads);
        for (size_t s = 0; s < window_base.size(); ++s) {
          // Slot 0 one page (or more) before the first new position, as after releases.
          window_base[s] = std::max(0, (start[s / kHeads] - 1) / page_size * page_size);
        }
        std::vector<int32_t> token_stream, positions;
        for (int seq = 0; seq < 3; ++seq) {
          for (int i = 0; i < count[seq]; ++i) {
            token_stream.push_back(seq * kHeads);
            positions.push_back(start[seq] + i);
          }
        }
        KvWriteStep step(dtype, page_size, head_dim, window_base, token_stream, positions, rng,
                         normal);
        step.WriteCpu();
        const std::string what = std::string(gpu_test::Name(dtype)) + " page " +
                                 std::to_string(page_size) + " D " + std::to_string(head_dim);
        ASSERT_NO_FATAL_FAILURE(step.WriteCuda()) << what;
        EXPECT_TRUE(testing::AllClose(gpu_test::Decode(step.gpu_k_pool, dtype), step.k_cpu,
                                      {.bitwise = true}, what + " k"));
        EXPECT_TRUE(testing::AllClose(gpu_test::Decode(step.gpu_v_pool, dtype), step.v_cpu,
                                      {.bitwise = true}, what + " v"));
        EXPECT_EQ(step.gpu_flags, step.flags_cpu) << what;
        // K-only (MLA's latent rows): the same K and flags, no V read or written.
        ASSERT_NO_FATAL_FAILURE(step.WriteCuda(/*k_only=*/true)) << what;
        EXPECT_TRUE(testing::AllClose(gpu_test::Decode(step.gpu_k_pool, dtype), step.k_cpu,
                                      {.bitwise = true}, what + " k-only k"));
        EXPECT_EQ(step.gpu_flags, step.flags_cpu) << what << " k-only";
      }
    }
  }
}

// Padding tokens (token_stream −1, as in a CUDA graph captured for a larger batch) write
// nothing: the pools and flags equal KvWriteCpu's over the real tokens alone, bitwise. The
// padding tokens carry positions that are valid window slots of streams 0 … H − 2 (where
// −1 + h would point) and α = 1, so a kernel that added h before the check, or wrote a flag,
// would change bytes the CPU twin leaves alone. Also a batch of padding only.
TEST(KvWriteGpu, PaddingTokensWriteNothing) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(41);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int page_size : {1, 16}) {
      for (bool only_padding : {false, true}) {
        constexpr int kHeadDim = 64, kSeqs = 2;
        // Real tokens: sequence 0 at positions 5…9, sequence 1 at 3; padding (−1) before,
        // between and after them, at positions 20…23 (free slots of every stream).
        std::vector<int32_t> token_stream, positions;
        auto add = [&](int32_t stream, int32_t pos) {
          token_stream.push_back(stream);
          positions.push_back(pos);
        };
        auto pad = [&] { add(-1, 20 + static_cast<int32_t>(positions.size()) % 4); };
        pad();
        if (!only_padding) {
          for (int32_t pos = 5; pos < 10; ++pos) add(0, pos);
        }
        pad();
        if (!only_padding) add(kHeads, 3);
        pad();
        pad();
        KvWriteStep step(dtype, page_size, kHeadDim, std::vector<int32_t>(kSeqs * kHeads, 0),
                         token_stream, positions, rng, normal);
        step.WriteCpu();
        const std::string what = std::string(gpu_test::Name(dtype)) + " page " +
                                 std::to_string(page_size) +
                                 (only_padding ? " padding only" : " mixed");
        ASSERT_NO_FATAL_FAILURE(step.WriteCuda()) << what;
        // Bitwise over the whole pools: the real tokens' slots hold their K/V, every other
        // byte (the padding's would-be slots included) is untouched.
        EXPECT_TRUE(step.gpu_k_pool == gpu_test::Encode(step.k_cpu, dtype)) << what << " k";
        EXPECT_TRUE(step.gpu_v_pool == gpu_test::Encode(step.v_cpu, dtype)) << what << " v";
        EXPECT_EQ(step.gpu_flags, step.flags_cpu) << what;
      }
    }
  }
}

TEST(KvCopyGpu, MatchesCpuTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  std::mt19937 rng(29);
  for (DeviceDType dtype : {DeviceDType::kF32, DeviceDType::kBF16}) {
    for (int page_size : {1, 3, 16, 64}) {
      for (int head_dim : {64, 128}) {
        constexpr int kPages = 300;
        const size_t pool_bytes =
            static_cast<size_t>(kPages) * page_size * head_dim * DeviceDTypeSize(dtype);
        std::vector<uint8_t> k_pool(pool_bytes), v_pool(pool_bytes);
        for (uint8_t& b : k_pool) b = rng();
        for (uint8_t& b : v_pool) b = rng();
        // Sources in pages [0, 100), destinations in [100, 300): independent ops.
        std::vector<kernels::KvCopyOp> ops;
        for (int i = 0; i < 150; ++i) {
          const bool promote = i % 3 != 0;
          const int32_t n = promote ? 1 : 1 + static_cast<int32_t>(rng() % page_size);
          ops.push_back({.src_page = static_cast<int32_t>(rng() % 100),
                         .src_slot = promote ? static_cast<int32_t>(rng() % page_size) : 0,
                         .dst_page = 100 + i,
                         .dst_slot = promote ? static_cast<int32_t>(rng() % page_size) : 0,
                         .num_slots = n});
        }
        std::vector<uint8_t> k_cpu = k_pool, v_cpu = v_pool;
        kernels::KvCopyCpu({.k_pool = k_cpu.data(),
                            .v_pool = v_cpu.data(),
                            .ops = ops.data(),
                            .num_ops = static_cast<int>(ops.size()),
                            .page_size = page_size,
                            .head_dim = head_dim,
                            .dtype = dtype});
        const std::string what = std::string(gpu_test::Name(dtype)) + " page " +
                                 std::to_string(page_size) + " D " + std::to_string(head_dim);
        DeviceArray<kernels::KvCopyOp> dops(ops);
        // Both pools, then K only (MLA: a null V pool is skipped, K copied the same).
        for (bool k_only : {false, true}) {
          DeviceArray<uint8_t> dk(k_pool), dv(v_pool);
          ASSERT_EQ(kernels::KvCopyCuda({.k_pool = dk.get(),
                                         .v_pool = k_only ? nullptr : dv.get(),
                                         .ops = dops.get(),
                                         .num_ops = static_cast<int>(ops.size()),
                                         .page_size = page_size,
                                         .head_dim = head_dim,
                                         .dtype = dtype},
                                        nullptr),
                    cudaSuccess);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          EXPECT_TRUE(dk.ToHost() == k_cpu) << what << (k_only ? " k-only" : "");
          EXPECT_TRUE(dv.ToHost() == (k_only ? v_pool : v_cpu))
              << what << (k_only ? " k-only" : "");
        }
      }
    }
  }
}

}  // namespace
}  // namespace rami
