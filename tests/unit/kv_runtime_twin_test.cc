// The CPU-twin run of tests/gpu/kv_runtime_gpu_test.cc, so that the KV plumbing of the CUDA
// forward pass is checked on every machine: the "device" is a KvTablesHost replica fed by the
// deltas alone plus a second host pool fed by the pool's copy log (cut into launches by
// KvCopyBatches, each replayed with parallel semantics), read through a KvStreamsView built from
// the flat tables (flags through flag_start) by KvWriteCpu and PagedAttentionCpu in the CUDA plan's
// token order. The GPU test's description:
//
// The KV plumbing of the CUDA forward pass, end to end in fp32, against the CPU backend's:
// random traffic (prefill chunks, decode, prefill after decode, forks, frees) through one host
// KvCache (the source of truth, with storage: the CPU reference) for dms, window and dense.
// Each step the GPU side does what the CUDA backend does — Sync the touched sequences into the
// device page tables (DeviceKvTables → DeviceKvTablesGpu::Apply, deltas only), replay the
// pool's copy log (promotions at the last commit, fork tails) with KvCopyCuda, plan the step
// (CudaStepPlan: decode tokens first, persistent streams), then per layer KvWriteCuda with the
// DMS decisions, DecodeAttentionCuda on the decode tokens and PrefillAttentionCuda on the
// prefill tiles — and the attention outputs equal PagedAttentionCpu's over the CPU metadata
// (PlanStep, BuildStepStreams) within 1e-4. Decode-only steps run padded to their CUDA graph
// bucket (PadDecodePlan): the padding tokens (NaN inputs, stream −1) change nothing and get
// zero rows.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kv_copy.h"
#include "kernels/paged_attention.h"
#include "tests/testing/compare.h"
#include "tests/testing/kv_traffic.h"
#include "worker/cpu/step_metadata.h"
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
using kv::KvTablesHost;

namespace {

constexpr int kLayers = 2, kHeads = 2, kGroup = 2, kDim = 64, kPage = 4, kPages = 6000;
constexpr int kQHeads = kHeads * kGroup;

TEST(KvRuntimeTwinTest, AttentionOverDeltaTablesEqualsTheCpuCache) {
  for (const CachePolicy& policy :
       {CachePolicy::Dms(8), CachePolicy::Window(4, 12), CachePolicy::Dense()}) {
    const bool dms = policy.kind == CachePolicyKind::kDms;
    KvCache cache({.page_size = kPage, .num_pages = kPages}, kLayers, kHeads, kDim, policy);
    std::vector<kernels::KvCopyOp> log;
    cache.pool().set_copy_log(&log);
    DeviceKvTables tables(kLayers, kHeads, kPage, policy);
    KvTablesHost replica;
    {
      const size_t pool_elems = static_cast<size_t>(kPages) * kPage * kDim;
      std::vector<float> dk(pool_elems), dv(pool_elems);
      int64_t copies = 0, launches = 0, padded_steps = 0;
      size_t commit_ops = 0;  // log[0, commit_ops): the last commit's promotions
      testing::KvTraffic traffic(3);
      for (int step = 0; step < 40; ++step) {
        const std::string where = policy.ToString() + " step " + std::to_string(step);
        absl::StatusOr<std::vector<SequenceChunk>> next = traffic.Next(cache);
        ASSERT_TRUE(next.ok()) << where << ": " << next.status();
        const std::vector<SequenceChunk>& chunks = *next;
        if (chunks.empty()) continue;

        // The "device" side: table deltas into the replica, the logged copies into its pool.
        KvTablesDelta delta;
        ASSERT_TRUE(tables.Sync(cache, traffic.TakeTouched(), &delta).ok());
        replica.Apply(delta);
        // The launches of KvCopyBatches, each with parallel semantics (every op reads its
        // sources before any op of the launch writes), as the device may run them. The last
        // commit's promotions come first and are passed as independent, as CudaStepHost does:
        // checked here against the full search, which must find them one launch.
        const std::vector<kernels::KvCopyOp> committed(log.begin(), log.begin() + commit_ops);
        ASSERT_LE(KvCopyBatches(committed, kPage).size(), 2u) << where;
        const std::vector<int32_t> bounds = KvCopyBatches(log, kPage, commit_ops);
        for (size_t b = 0; b + 1 < bounds.size(); ++b) {
          const std::vector<float> k0 = dk, v0 = dv;
          for (int32_t i = bounds[b]; i < bounds[b + 1]; ++i) {
            const kernels::KvCopyOp& op = log[i];
            for (int32_t j = 0; j < op.num_slots; ++j) {
              const size_t src =
                  (static_cast<size_t>(op.src_page) * kPage + op.src_slot + j) * kDim;
              const size_t dst =
                  (static_cast<size_t>(op.dst_page) * kPage + op.dst_slot + j) * kDim;
              std::copy_n(&k0[src], kDim, &dk[dst]);
              std::copy_n(&v0[src], kDim, &dv[dst]);
            }
          }
        }
        copies += static_cast<int64_t>(log.size());
        launches += bounds.empty() ? 0 : static_cast<int64_t>(bounds.size()) - 1;
        log.clear();
        for (const SequenceChunk& c : chunks) {
          tables.ExpectDeviceFlags(c.seq_id, static_cast<int64_t>(c.tokens.size()));
        }

        const StepMetadata cpu = PlanStep(chunks, cache);
        const kernels::KvStreamsView cpu_view = cache.View(cpu.streams);
        CudaStepPlan plan = PlanCudaStep(chunks, cache, tables);
        // A decode-only step runs padded to its CUDA graph bucket (max 16 here).
        const int real_tokens = plan.num_tokens;
        if (plan.num_decode == plan.num_tokens && DecodeBucket(real_tokens, 16) > real_tokens) {
          PadDecodePlan(DecodeBucket(real_tokens, 16), &plan);
          ++padded_steps;
        }
        const int P = plan.num_tokens;  // plan tokens, padding included
        // The device view read the CPU way: per-stream flag pointers from flag_start, with the
        // device tables' stride.
        std::vector<uint8_t*> flags;
        if (policy.evicts()) {
          for (int32_t start : replica.flag_start) flags.push_back(replica.flags.data() + start);
        }
        const kernels::KvStreamsView view{.k_pool = dk.data(),
                                          .v_pool = dv.data(),
                                          .page_table = replica.page_table.data(),
                                          .kept_page_start = replica.kept_page_start.data(),
                                          .kept_count = replica.kept_count.data(),
                                          .window_page_start = replica.window_page_start.data(),
                                          .window_base = replica.window_base.data(),
                                          .window_start = replica.window_start.data(),
                                          .window_flags = flags.empty() ? nullptr : flags.data(),
                                          .window_flag_stride = replica.flag_stride,
                                          .page_size = kPage,
                                          .head_dim = kDim,
                                          .window = policy.window};
        const std::vector<int32_t> to_plan = testing::PlanRows(chunks, plan.chunk_first);
        const float scale = 1.0f / std::sqrt(static_cast<float>(kDim));
        for (int layer = 0; layer < kLayers; ++layer) {
          // Plan order: padding rows hold garbage (NaN, α 1): they must not matter.
          const testing::LayerInputs in =
              traffic.RandomLayerInputs(to_plan, P, kHeads, kQHeads, kDim);
          const std::vector<float> expected =
              testing::ReferenceLayer(cpu_view, cpu, layer, in, dms, kHeads, kQHeads, scale);
          std::vector<float> out(in.qp.size());
          const int32_t* ts = plan.token_stream.data() + static_cast<size_t>(layer) * P;
          kernels::KvWriteCpu({.cache = view,
                               .k = in.kp.data(),
                               .v = in.vp.data(),
                               .alpha = dms ? in.alpha_plan.data() : nullptr,
                               .token_stream = ts,
                               .positions = plan.positions.data(),
                               .num_tokens = P,
                               .num_kv_heads = kHeads});
          kernels::PagedAttentionCpu({.cache = view,
                                      .q = in.qp.data(),
                                      .out = out.data(),
                                      .token_stream = ts,
                                      .positions = plan.positions.data(),
                                      .num_tokens = P,
                                      .num_q_heads = kQHeads,
                                      .num_kv_heads = kHeads,
                                      .scale = scale});
          // Padding rows come last in a padded plan (PadDecodePlan).
          const testing::CallerOrder got =
              testing::ToCallerOrder(out, to_plan, static_cast<size_t>(kQHeads) * kDim);
          ASSERT_EQ(got.padding_nonzero, 0) << where << " layer " << layer;
          ASSERT_TRUE(testing::AllClose(got.rows, expected, {.atol = 1e-5, .rtol = 1e-5},
                                        where + " layer " + std::to_string(layer)));
        }
        traffic.Commit(cache, chunks);
        commit_ops = log.size();  // the log was empty: cleared after the replay
      }
      std::printf("[%s] %lld slot copies replayed in %lld launches; %lld steps padded\n",
                  policy.ToString().c_str(), static_cast<long long>(copies),
                  static_cast<long long>(launches), static_cast<long long>(padded_steps));
      EXPECT_GT(padded_steps, 0) << policy.ToString();
    }
  }
}

}  // namespace
}  // namespace rami
