// CudaStepPlan (worker/engine/cuda_step_plan.h) against the CPU backend's StepMetadata
// (PlanStep) for random mixes of decode tokens and prefill chunks over dms, window and dense
// caches: every caller token appears once in plan order with its id and position, single-token
// chunks come first, logits rows are the CPU's rows in the CPU's order, and for every token,
// layer and KV head the stream read through the device tables (DeviceKvTables' mirror) holds
// the same page lists, counts, window base and start as the CPU's stream. The packed buffer
// holds the arrays at their offsets.
#include "worker/engine/cuda_step_plan.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cpu/step_metadata.h"

namespace rami {

using cpu::PlanStep;
using cpu::StepMetadata;
using engine::CudaStepLayout;
using engine::CudaStepPlan;
using engine::DecodeBucket;
using engine::LayoutOf;
using engine::PackCudaStep;
using engine::PadDecodePlan;
using engine::PlanCudaStep;
using engine::SequenceChunk;
using kv::CachePolicy;
using kv::DeviceKvTables;
using kv::KvCache;
using kv::KvTablesDelta;
using kv::KvTablesHost;
using kv::SeqId;
using kv::StepStreams;

namespace {

constexpr int kLayers = 2, kHeads = 2;

std::vector<int32_t> Slice(const std::vector<int32_t>& table, int32_t start, size_t n) {
  return {table.begin() + start, table.begin() + start + static_cast<int64_t>(n)};
}

TEST(CudaStepPlanTest, MatchesTheCpuStepMetadata) {
  for (const CachePolicy& policy :
       {CachePolicy::Dms(3), CachePolicy::Window(2, 6), CachePolicy::Dense()}) {
    constexpr int kPage = 4;
    KvCache cache({.page_size = kPage, .num_pages = 20000, .allocate_storage = false}, kLayers,
                  kHeads, 8, policy);
    DeviceKvTables tables(kLayers, kHeads, kPage, policy);
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> len(1, 9), coin(0, 3);
    std::vector<SeqId> ids;
    for (SeqId id = 1; id <= 6; ++id) {
      ASSERT_TRUE(cache.AddSequence(id).ok());
      ids.push_back(id);
    }
    for (int step = 0; step < 40; ++step) {
      std::vector<SequenceChunk> chunks;
      for (SeqId id : ids) {
        if (coin(rng) == 0) continue;
        SequenceChunk c{.seq_id = id, .tokens = {}, .all_logits = coin(rng) == 0};
        const int n = coin(rng) == 0 || cache.Length(id) == 0 ? len(rng) : 1;
        for (int i = 0; i < n; ++i) c.tokens.push_back(static_cast<int32_t>(rng() % 1000));
        chunks.push_back(std::move(c));
      }
      if (chunks.empty()) continue;
      std::shuffle(chunks.begin(), chunks.end(), rng);
      std::vector<std::pair<SeqId, int64_t>> appends;
      for (const SequenceChunk& c : chunks) appends.emplace_back(c.seq_id, c.tokens.size());
      ASSERT_TRUE(cache.ReserveAppend(appends).ok());
      KvTablesDelta delta;
      ASSERT_TRUE(tables.Sync(cache, ids, &delta).ok());
      const StepMetadata cpu = PlanStep(chunks, cache);
      const CudaStepPlan gpu = PlanCudaStep(chunks, cache, tables);
      const KvTablesHost& t = tables.mirror();

      ASSERT_EQ(gpu.num_tokens, cpu.num_tokens);
      ASSERT_EQ(gpu.first_row, cpu.first_row);
      ASSERT_EQ(gpu.logit_tokens.size(), cpu.logit_tokens.size());
      // Caller token (chunk c, index i) is CPU token cpu_t and plan token gpu_t.
      std::vector<int32_t> cpu_to_gpu(cpu.num_tokens, -1);
      int cpu_t = 0;
      for (size_t c = 0; c < chunks.size(); ++c) {
        const int n = static_cast<int>(chunks[c].tokens.size());
        if (n == 1) {
          ASSERT_LT(gpu.chunk_first[c], gpu.num_decode) << "decode tokens first";
        } else {
          ASSERT_GE(gpu.chunk_first[c], gpu.num_decode);
        }
        for (int i = 0; i < n; ++i, ++cpu_t) cpu_to_gpu[cpu_t] = gpu.chunk_first[c] + i;
      }
      for (size_t r = 0; r < cpu.logit_tokens.size(); ++r) {
        ASSERT_EQ(gpu.logit_tokens[r], cpu_to_gpu[cpu.logit_tokens[r]]) << "row " << r;
      }
      for (int ct = 0; ct < cpu.num_tokens; ++ct) {
        const int gt = cpu_to_gpu[ct];
        ASSERT_EQ(gpu.tokens[gt], cpu.tokens[ct]);
        ASSERT_EQ(gpu.positions[gt], cpu.positions[ct]);
        for (int layer = 0; layer < kLayers; ++layer) {
          for (int h = 0; h < kHeads; ++h) {
            const size_t cs = cpu.token_stream[layer][ct] + h;
            const size_t gs =
                gpu.token_stream[static_cast<size_t>(layer) * gpu.num_tokens + gt] + h;
            const StepStreams& s = cpu.streams;
            const size_t kept_pages = (s.kept_count[cs] + kPage - 1) / kPage;
            ASSERT_EQ(t.kept_count[gs], s.kept_count[cs]);
            ASSERT_EQ(Slice(t.page_table, t.kept_page_start[gs], kept_pages),
                      Slice(s.page_table, s.kept_page_start[cs], kept_pages));
            const size_t window_pages =
                (gpu.positions[gt] + 1 - s.window_base[cs] + kPage - 1) / kPage;
            ASSERT_EQ(Slice(t.page_table, t.window_page_start[gs], window_pages),
                      Slice(s.page_table, s.window_page_start[cs], window_pages));
            ASSERT_EQ(t.window_base[gs], s.window_base[cs]);
            ASSERT_EQ(t.window_start[gs], s.window_start[cs]);
          }
        }
      }
      const CudaStepLayout layout = LayoutOf(gpu);
      std::vector<char> packed(layout.bytes);
      PackCudaStep(gpu, layout, packed.data());
      std::vector<int32_t> back(gpu.token_stream.size());
      std::memcpy(back.data(), packed.data() + layout.token_stream, 4 * back.size());
      ASSERT_EQ(back, gpu.token_stream);
      ASSERT_EQ(layout.positions % 16, 0u);
      for (const auto& [id, n] : appends) cache.CommitAppend(id, n);
    }
  }
}

TEST(CudaStepPlanTest, DecodeBuckets) {
  EXPECT_EQ(DecodeBucket(0, 256), 0);
  EXPECT_EQ(DecodeBucket(1, 256), 1);
  EXPECT_EQ(DecodeBucket(2, 256), 2);
  EXPECT_EQ(DecodeBucket(3, 256), 4);
  EXPECT_EQ(DecodeBucket(5, 256), 8);
  EXPECT_EQ(DecodeBucket(17, 256), 24);
  EXPECT_EQ(DecodeBucket(256, 256), 256);
  EXPECT_EQ(DecodeBucket(257, 256), 0);
  EXPECT_EQ(DecodeBucket(13, 12), 0);
  EXPECT_EQ(DecodeBucket(11, 12), 12);  // a max that is no multiple of 8 is its own bucket
  for (int n = 1; n <= 256; ++n) {
    const int b = DecodeBucket(n, 256);
    ASSERT_GE(b, n);
    ASSERT_EQ(DecodeBucket(b, 256), b) << n;  // buckets are fixed points
  }
}

// A padded decode plan keeps the real tokens' arrays, appends inert tokens (stream −1 in every
// layer) and their rows after the real rows, and lays out like any plan of the bucket's size.
TEST(CudaStepPlanTest, PadDecodePlan) {
  KvCache cache({.page_size = 4, .num_pages = 100, .allocate_storage = false}, kLayers, kHeads, 8,
                CachePolicy::Dms(3));
  DeviceKvTables tables(kLayers, kHeads, 4, CachePolicy::Dms(3));
  std::vector<SequenceChunk> chunks;
  std::vector<std::pair<SeqId, int64_t>> appends;
  for (SeqId id = 1; id <= 3; ++id) {
    ASSERT_TRUE(cache.AddSequence(id).ok());
    chunks.push_back({.seq_id = id, .tokens = {static_cast<int32_t>(10 * id)}});
    appends.emplace_back(id, 1);
  }
  ASSERT_TRUE(cache.ReserveAppend(appends).ok());
  KvTablesDelta delta;
  ASSERT_TRUE(tables.Sync(cache, {1, 2, 3}, &delta).ok());
  const CudaStepPlan real = PlanCudaStep(chunks, cache, tables);
  CudaStepPlan padded = real;
  PadDecodePlan(4, &padded);
  EXPECT_EQ(padded.num_tokens, 4);
  EXPECT_EQ(padded.num_decode, 4);
  EXPECT_EQ(padded.tokens, (std::vector<int32_t>{10, 20, 30, 0}));
  EXPECT_EQ(padded.positions, (std::vector<int32_t>{0, 0, 0, 0}));
  for (int layer = 0; layer < kLayers; ++layer) {
    for (int t = 0; t < 3; ++t) {
      EXPECT_EQ(padded.token_stream[layer * 4 + t], real.token_stream[layer * 3 + t]);
    }
    EXPECT_EQ(padded.token_stream[layer * 4 + 3], -1);
  }
  EXPECT_EQ(padded.logit_tokens, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(padded.first_row, real.first_row);
  EXPECT_EQ(padded.chunk_first, real.chunk_first);
  EXPECT_EQ(padded.max_decode_keys, real.max_decode_keys);
  // The layout of any padded plan of the bucket: a captured graph's pointers stay valid.
  CudaStepPlan one = real;
  one.num_tokens = one.num_decode = 1;
  one.tokens.resize(1);
  one.positions.resize(1);
  one.token_stream = {real.token_stream[0], real.token_stream[3]};
  one.logit_tokens = {0};
  PadDecodePlan(4, &one);
  const CudaStepLayout a = LayoutOf(padded), b = LayoutOf(one);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.token_stream, b.token_stream);
  EXPECT_EQ(a.logit_tokens, b.logit_tokens);
}

}  // namespace
}  // namespace rami
