// The device page tables (worker/cuda/device_kv_tables_gpu.h) against their host twin
// (KvTablesHost::Apply): random cache traffic (prefill chunks, decode, forks, frees) for dense,
// window and dms; after every step's delta the device arrays, copied back, equal the host
// replica entry by entry — including the growth of every table.
#include "worker/cuda/device_kv_tables_gpu.h"

#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "tests/gpu/require_device.h"
#include "worker/kv/device_kv_tables.h"
#include "worker/kv/kv_cache.h"

namespace rami {

using kv::CachePolicy;
using kv::CachePolicyKind;
using kv::DeviceKvTables;
using kv::KvCache;
using kv::KvTablesDelta;
using kv::KvTablesHost;
using kv::SeqId;
using kv::StepStreams;

namespace {

template <typename T>
std::vector<T> Download(const T* ptr, size_t count) {
  std::vector<T> host(count);
  if (count > 0) {
    EXPECT_EQ(cudaMemcpy(host.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  }
  return host;
}

void ExpectDeviceEquals(const cuda::DeviceKvTablesGpu& gpu, const KvTablesHost& host, int step) {
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  kernels::KvCacheCudaView view;
  gpu.FillView(&view);
  const size_t streams = host.kept_count.size();
  EXPECT_EQ(Download(view.page_table, host.page_table.size()), host.page_table) << step;
  EXPECT_EQ(Download(view.kept_page_start, streams), host.kept_page_start) << step;
  EXPECT_EQ(Download(view.kept_count, streams), host.kept_count) << step;
  EXPECT_EQ(Download(view.window_page_start, streams), host.window_page_start) << step;
  EXPECT_EQ(Download(view.window_base, streams), host.window_base) << step;
  EXPECT_EQ(Download(view.window_start, streams), host.window_start) << step;
  EXPECT_EQ(Download(view.flag_start, streams), host.flag_start) << step;
  EXPECT_EQ(Download(static_cast<const uint8_t*>(view.flags), host.flags.size()), host.flags)
      << step;
}

TEST(DeviceKvTablesGpuTest, DeltasOnTheDeviceEqualTheHostTwin) {
  RAMI_REQUIRE_CUDA_DEVICE();
  for (const CachePolicy& policy :
       {CachePolicy::Dense(), CachePolicy::Window(4, 8), CachePolicy::Dms(16)}) {
    constexpr int kLayers = 3, kHeads = 2, kPage = 4;
    KvCache cache({.page_size = kPage, .num_pages = 50000, .allocate_storage = false}, kLayers,
                  kHeads, 8, policy);
    DeviceKvTables tables(kLayers, kHeads, kPage, policy);
    KvTablesHost replica;
    cudaStream_t stream;
    ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
    {
      cuda::DeviceKvTablesGpu gpu(stream);
      std::mt19937 rng(7);
      std::uniform_int_distribution<int> op(0, 99), chunk(1, 50);
      std::bernoulli_distribution coin(0.7);
      std::map<SeqId, int64_t> live;
      std::vector<SeqId> touched;
      SeqId next = 1;
      for (int step = 0; step < 150; ++step) {
        const int r = op(rng);
        if (live.size() < 3 || r < 5) {
          ASSERT_TRUE(cache.AddSequence(next).ok());
          live[next] = 0;
          touched.push_back(next++);
        } else if (r < 10) {
          const SeqId parent = std::next(live.begin(), op(rng) % live.size())->first;
          ASSERT_TRUE(cache.Fork(parent, {next}).ok());
          live[next] = live[parent];
          touched.push_back(next++);
        } else if (r < 14) {
          const SeqId id = std::next(live.begin(), op(rng) % live.size())->first;
          ASSERT_TRUE(cache.FreeSequence(id).ok());
          live.erase(id);
          touched.push_back(id);
        }
        std::vector<std::pair<SeqId, int64_t>> appends;
        for (const auto& [id, len] : live) appends.emplace_back(id, op(rng) < 10 ? chunk(rng) : 1);
        ASSERT_TRUE(cache.ReserveAppend(appends).ok());
        for (const auto& a : appends) touched.push_back(a.first);
        KvTablesDelta delta;
        ASSERT_TRUE(tables.Sync(cache, touched, &delta).ok());
        touched.clear();
        replica.Apply(delta);
        ASSERT_TRUE(gpu.Apply(delta).ok());
        ASSERT_NO_FATAL_FAILURE(ExpectDeviceEquals(gpu, replica, step));
        // The step's decisions, on the host (the device test of the tables has no KvWrite).
        std::vector<SeqId> batch;
        for (const auto& a : appends) batch.push_back(a.first);
        if (policy.kind == CachePolicyKind::kDms) {
          const StepStreams st = cache.BuildStepStreams(batch);
          for (size_t b = 0; b < appends.size(); ++b) {
            const int64_t length = cache.Length(appends[b].first);
            for (int i = 0; i < kLayers * kHeads; ++i) {
              const size_t s = b * kLayers * kHeads + i;
              for (int64_t p = std::max<int64_t>(length, 1); p < length + appends[b].second; ++p) {
                st.Flag(s, p - 1 - st.window_base[s]) = coin(rng) ? 1 : 0;
              }
            }
          }
        }
        for (const auto& [id, count] : appends) {
          cache.CommitAppend(id, count);
          live[id] += count;
          touched.push_back(id);
        }
      }
      std::printf("[%s] device tables: %lld bytes\n", policy.ToString().c_str(),
                  static_cast<long long>(gpu.device_bytes()));
    }
    cudaStreamDestroy(stream);
  }
}

}  // namespace
}  // namespace rami
