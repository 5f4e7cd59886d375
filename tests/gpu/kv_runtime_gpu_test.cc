// The KV plumbing of the CUDA forward pass, end to end in fp32, against the CPU backend's:
// random traffic (prefill chunks, decode, prefill after decode, forks, frees) through one host
// KvCache (the source of truth, with storage: the CPU reference) for dms, window and dense.
// Each step the GPU side does what the CUDA backend does — Sync the touched sequences into the
// device page tables (DeviceKvTables → DeviceKvTablesGpu::Apply, deltas only), replay the
// pool's copy log (promotions at the last commit, fork tails) with KvCopyCuda in the
// independent launches of KvCopyBatches, plan the step
// (CudaStepPlan: decode tokens first, persistent streams), then per layer KvWriteCuda with the
// DMS decisions, DecodeAttentionCuda on the decode tokens and PrefillAttentionCuda on the
// prefill tiles — and the attention outputs equal PagedAttentionCpu's over the CPU metadata
// (PlanStep, BuildStepStreams) within 1e-4. Decode-only steps run padded to their CUDA graph
// bucket (PadDecodePlan) with balanced splits: the padding tokens (NaN inputs, stream −1)
// change nothing and get zero rows.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/device.h"
#include "kernels/paged_attention.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"
#include "tests/testing/compare.h"
#include "tests/testing/kv_traffic.h"
#include "worker/cpu/step_metadata.h"
#include "worker/cuda/device_kv_tables_gpu.h"
#include "worker/engine/cuda_step_plan.h"
#include "worker/kv/device_kv_tables.h"
#include "worker/kv/kv_copy_batches.h"

namespace rami {

using cpu::PlanStep;
using cpu::StepMetadata;
using engine::CudaStepPlan;
using engine::DecodeBucket;
using engine::PadDecodePlan;
using engine::PlanCudaStep;
using engine::SequenceChunk;
using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::DeviceKvTables;
using kv::KvCache;
using kv::KvCopyBatches;
using kv::KvTablesDelta;

namespace {

using gpu_test::DeviceArray;

constexpr int kLayers = 2, kHeads = 2, kGroup = 2, kDim = 64, kPage = 4, kPages = 6000;
constexpr int kQHeads = kHeads * kGroup;

TEST(KvRuntimeGpuTest, AttentionOverDeltaTablesEqualsTheCpuCache) {
  RAMI_REQUIRE_CUDA_DEVICE();
  int num_sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  for (const CachePolicy& policy :
       {CachePolicy::Dms(8), CachePolicy::Window(4, 12), CachePolicy::Dense()}) {
    const bool dms = policy.kind == CachePolicyKind::kDms;
    KvCache cache({.page_size = kPage, .num_pages = kPages}, kLayers, kHeads, kDim, policy);
    std::vector<kernels::KvCopyOp> log;
    cache.pool().set_copy_log(&log);
    DeviceKvTables tables(kLayers, kHeads, kPage, policy);
    cudaStream_t stream;
    ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
    {
      cuda::DeviceKvTablesGpu gpu(stream);
      const size_t pool_elems = static_cast<size_t>(kPages) * kPage * kDim;
      DeviceArray<float> dk(pool_elems), dv(pool_elems);
      testing::KvTraffic traffic(3);
      for (int step = 0; step < 40; ++step) {
        const std::string where = policy.ToString() + " step " + std::to_string(step);
        absl::StatusOr<std::vector<SequenceChunk>> next = traffic.Next(cache);
        ASSERT_TRUE(next.ok()) << where << ": " << next.status();
        const std::vector<SequenceChunk>& chunks = *next;
        if (chunks.empty()) continue;

        // The device side of the step's bookkeeping: table deltas, then the logged copies in
        // independent launches (KvCopyBatches).
        KvTablesDelta delta;
        ASSERT_TRUE(tables.Sync(cache, traffic.TakeTouched(), &delta).ok());
        ASSERT_TRUE(gpu.Apply(delta).ok()) << where;
        if (!log.empty()) {
          DeviceArray<kernels::KvCopyOp> dops(log);
          const std::vector<int32_t> bounds = KvCopyBatches(log, kPage);
          for (size_t b = 0; b + 1 < bounds.size(); ++b) {
            ASSERT_EQ(kernels::KvCopyCuda({.k_pool = dk.get(),
                                           .v_pool = dv.get(),
                                           .ops = dops.get() + bounds[b],
                                           .num_ops = bounds[b + 1] - bounds[b],
                                           .page_size = kPage,
                                           .head_dim = kDim,
                                           .dtype = kernels::DeviceDType::kF32},
                                          stream),
                      cudaSuccess);
          }
          ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
          log.clear();
        }
        for (const SequenceChunk& c : chunks) {
          tables.ExpectDeviceFlags(c.seq_id, static_cast<int64_t>(c.tokens.size()));
        }

        const StepMetadata cpu = PlanStep(chunks, cache);
        const kernels::KvStreamsView cpu_view = cache.View(cpu.streams);
        CudaStepPlan plan = PlanCudaStep(chunks, cache, tables);
        // A decode-only step runs padded to its CUDA graph bucket (max 16 here), with balanced
        // splits, as the CUDA backend runs it.
        const int real_tokens = plan.num_tokens;
        const bool padded =
            plan.num_decode == plan.num_tokens && DecodeBucket(real_tokens, 16) > real_tokens;
        if (padded) PadDecodePlan(DecodeBucket(real_tokens, 16), &plan);
        const int P = plan.num_tokens;  // plan tokens, padding included
        kernels::KvCacheCudaView view{.k_pool = dk.get(),
                                      .v_pool = dv.get(),
                                      .page_size = kPage,
                                      .head_dim = kDim,
                                      .window = policy.window,
                                      .dtype = kernels::DeviceDType::kF32};
        gpu.FillView(&view);
        if (!policy.evicts()) view.flags = nullptr;
        const std::vector<int32_t> to_plan = testing::PlanRows(chunks, plan.chunk_first);
        const std::vector<kernels::PrefillTile> tiles =
            kernels::PlanPrefillTiles(plan.prefill_first, plan.prefill_length, kGroup);
        DeviceArray<kernels::PrefillTile> dtiles(tiles);
        DeviceArray<int32_t> dpos(plan.positions);
        kernels::DecodeSplitPlan splits = kernels::PlanDecodeSplits(
            plan.max_decode_keys, std::max(plan.num_decode, 1), kHeads, num_sms);
        if (padded) splits.keys_per_split = 0;
        DeviceArray<float> partial_out(static_cast<size_t>(std::max(plan.num_decode, 1)) * kQHeads *
                                       splits.num_splits * kDim);
        DeviceArray<float> partial_lse(static_cast<size_t>(std::max(plan.num_decode, 1)) * kQHeads *
                                       splits.num_splits);
        const float scale = 1.0f / std::sqrt(static_cast<float>(kDim));

        for (int layer = 0; layer < kLayers; ++layer) {
          // Plan order: padding rows hold garbage (NaN, α 1): they must not matter.
          const testing::LayerInputs in =
              traffic.RandomLayerInputs(to_plan, P, kHeads, kQHeads, kDim);

          const std::vector<float> expected =
              testing::ReferenceLayer(cpu_view, cpu, layer, in, dms, kHeads, kQHeads, scale);

          // The output starts as garbage: padding rows must be written (zeros).
          DeviceArray<float> dkg(in.kp), dvg(in.vp), dqg(in.qp),
              dout(std::vector<float>(in.qp.size(), 7.0f));
          DeviceArray<uint8_t> dag(in.alpha_plan);
          DeviceArray<int32_t> dts(std::vector<int32_t>(
              plan.token_stream.begin() + static_cast<int64_t>(layer) * P,
              plan.token_stream.begin() + static_cast<int64_t>(layer + 1) * P));
          ASSERT_EQ(kernels::KvWriteCuda({.cache = view,
                                          .k = dkg.get(),
                                          .v = dvg.get(),
                                          .alpha = dms ? dag.get() : nullptr,
                                          .token_stream = dts.get(),
                                          .positions = dpos.get(),
                                          .num_tokens = P,
                                          .num_kv_heads = kHeads},
                                         stream),
                    cudaSuccess);
          if (plan.num_decode > 0) {
            ASSERT_EQ(kernels::DecodeAttentionCuda({.cache = view,
                                                    .q = dqg.get(),
                                                    .out = dout.get(),
                                                    .token_stream = dts.get(),
                                                    .positions = dpos.get(),
                                                    .num_tokens = plan.num_decode,
                                                    .num_q_heads = kQHeads,
                                                    .num_kv_heads = kHeads,
                                                    .scale = scale,
                                                    .num_splits = splits.num_splits,
                                                    .keys_per_split = splits.keys_per_split,
                                                    .partial_out = partial_out.get(),
                                                    .partial_lse = partial_lse.get()},
                                                   stream),
                      cudaSuccess);
          }
          ASSERT_EQ(kernels::PrefillAttentionCuda({.cache = view,
                                                   .q = dqg.get(),
                                                   .out = dout.get(),
                                                   .token_stream = dts.get(),
                                                   .positions = dpos.get(),
                                                   .tiles = dtiles.get(),
                                                   .num_tiles = static_cast<int>(tiles.size()),
                                                   .num_q_heads = kQHeads,
                                                   .num_kv_heads = kHeads,
                                                   .scale = scale},
                                                  stream),
                    cudaSuccess);
          ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
          const std::vector<float> out = dout.ToHost();
          // Padding rows come last in a padded plan (PadDecodePlan).
          const testing::CallerOrder got =
              testing::ToCallerOrder(out, to_plan, static_cast<size_t>(kQHeads) * kDim);
          ASSERT_EQ(got.padding_nonzero, 0) << where << " layer " << layer;
          ASSERT_TRUE(testing::AllClose(got.rows, expected, {.atol = 1e-4, .rtol = 1e-4},
                                        where + " layer " + std::to_string(layer)));
        }
        // The host flags got the decisions through KvWriteCpu (the CUDA backend copies the
        // device's back); the commit logs the promotions for the next step's copies.
        traffic.Commit(cache, chunks);
      }
    }
    ASSERT_EQ(cudaStreamDestroy(stream), cudaSuccess);
  }
}

}  // namespace
}  // namespace rami
