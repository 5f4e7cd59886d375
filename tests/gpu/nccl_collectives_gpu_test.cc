// NcclCollectives on one GPU (the GPU machine has one): a world of one goes through NCCL for
// real, so the collectives (fp32, and the typed bf16/fp32 device forms) must be the identity on
// device buffers, in stream order with the kernels and copies around them; the watchdog must turn a
// collective stuck on its stream into DeadlineExceeded and make later calls fail fast; a rank whose
// peer never comes must time out. Skips without a device.
#include "worker/collectives/nccl_collectives.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_dtype.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu/require_device.h"
#include "tests/testing/compare.h"
#include "worker/collectives/rendezvous_store.h"

namespace rami {

using collectives::InMemoryRendezvousStore;
using collectives::NcclCollectives;
using collectives::NcclCollectivesOptions;

namespace {

using ::testing::HasSubstr;

// Self-describing data: the value says which element it is.
std::vector<float> Iota(size_t count, float base) {
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = base + static_cast<float>(i % 1009) * 0.25f;
  return v;
}

// A stream and a device buffer per test, freed at scope exit.
struct Stream {
  cudaStream_t s = nullptr;
  Stream() { EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess); }
  ~Stream() { cudaStreamDestroy(s); }
};

struct DeviceFloats {
  float* ptr = nullptr;
  size_t count = 0;
  explicit DeviceFloats(size_t n) : count(n) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&ptr), sizeof(float) * (n == 0 ? 1 : n)),
              cudaSuccess);
  }
  ~DeviceFloats() { cudaFree(ptr); }
  // Copies in and out on `stream`, so the order with the collectives is the stream's.
  void Upload(const std::vector<float>& host, cudaStream_t stream) {
    EXPECT_EQ(cudaMemcpyAsync(ptr, host.data(), sizeof(float) * host.size(), cudaMemcpyHostToDevice,
                              stream),
              cudaSuccess);
  }
  std::vector<float> Download(cudaStream_t stream) const {
    std::vector<float> host(count);
    EXPECT_EQ(
        cudaMemcpyAsync(host.data(), ptr, sizeof(float) * count, cudaMemcpyDeviceToHost, stream),
        cudaSuccess);
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    return host;
  }
};

std::unique_ptr<NcclCollectives> CreateSingleRank(cudaStream_t stream,
                                                  absl::Duration timeout = absl::Seconds(30)) {
  absl::StatusOr<std::unique_ptr<NcclCollectives>> c =
      NcclCollectives::Create({.rank = 0,
                               .world_size = 1,
                               .device = 0,
                               .group_id = "gpu-test",
                               .stream = stream,
                               .timeout = timeout},
                              nullptr);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

TEST(NcclCollectivesGpu, SingleRankCollectivesAreTheIdentity) {
  RAMI_REQUIRE_CUDA_DEVICE();
  Stream stream;
  std::unique_ptr<NcclCollectives> nccl = CreateSingleRank(stream.s);
  ASSERT_NE(nccl, nullptr);
  EXPECT_EQ(nccl->rank(), 0);
  EXPECT_EQ(nccl->world_size(), 1);
  for (size_t count : {1, 3, 1000, 100003}) {
    const std::string what = "count " + std::to_string(count);
    const std::vector<float> a = Iota(count, 1.0f), b = Iota(count, -7.0f);

    DeviceFloats data(count);
    data.Upload(a, stream.s);
    ASSERT_TRUE(nccl->AllReduceSum(data.ptr, count).ok()) << what;
    ASSERT_TRUE(nccl->Broadcast(data.ptr, count, 0).ok()) << what;
    EXPECT_TRUE(testing::AllClose(data.Download(stream.s), a, {.bitwise = true}, what));

    // Out of place, then NCCL's in-place form (in is rank 0's slot of out).
    DeviceFloats in(count), out(count);
    in.Upload(b, stream.s);
    ASSERT_TRUE(nccl->AllGather(in.ptr, count, out.ptr).ok()) << what;
    EXPECT_TRUE(testing::AllClose(out.Download(stream.s), b, {.bitwise = true}, what));
    out.Upload(a, stream.s);
    ASSERT_TRUE(nccl->AllGather(out.ptr, count, out.ptr).ok()) << what;
    EXPECT_TRUE(testing::AllClose(out.Download(stream.s), a, {.bitwise = true}, what));
    ASSERT_TRUE(nccl->Synchronize().ok());
  }
}

// Raw device bytes for the typed collectives, copied on `stream` like DeviceFloats.
struct DeviceBytes {
  void* ptr = nullptr;
  size_t size = 0;
  explicit DeviceBytes(size_t n) : size(n) {
    EXPECT_EQ(cudaMalloc(&ptr, n == 0 ? 1 : n), cudaSuccess);
  }
  ~DeviceBytes() { cudaFree(ptr); }
  void Upload(const std::vector<uint8_t>& host, cudaStream_t stream) {
    EXPECT_EQ(cudaMemcpyAsync(ptr, host.data(), host.size(), cudaMemcpyHostToDevice, stream),
              cudaSuccess);
  }
  std::vector<uint8_t> Download(cudaStream_t stream) const {
    std::vector<uint8_t> host(size);
    EXPECT_EQ(cudaMemcpyAsync(host.data(), ptr, size, cudaMemcpyDeviceToHost, stream), cudaSuccess);
    EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    return host;
  }
};

// Iota's values in the element type of `dtype`, as bytes (bf16 rounded to nearest even).
std::vector<uint8_t> IotaBytes(size_t count, float base, kernels::DeviceDType dtype) {
  return gpu_test::Encode(Iota(count, base), dtype);
}

// The typed forms (bf16 and fp32) in a world of one: AllReduceSumDevice is the identity and
// AllGatherDevice a copy (out of place and in place), bitwise, in stream order.
TEST(NcclCollectivesGpu, TypedDeviceCollectivesAreTheIdentity) {
  RAMI_REQUIRE_CUDA_DEVICE();
  Stream stream;
  std::unique_ptr<NcclCollectives> nccl = CreateSingleRank(stream.s);
  ASSERT_NE(nccl, nullptr);
  for (kernels::DeviceDType dtype : {kernels::DeviceDType::kBF16, kernels::DeviceDType::kF32}) {
    const size_t es = kernels::DeviceDTypeSize(dtype);
    for (size_t count : {1, 3, 1000, 100003}) {
      const std::string what =
          std::string(gpu_test::Name(dtype)) + " count " + std::to_string(count);
      const std::vector<uint8_t> a = IotaBytes(count, 1.0f, dtype);
      const std::vector<uint8_t> b = IotaBytes(count, -7.0f, dtype);

      DeviceBytes data(count * es);
      data.Upload(a, stream.s);
      ASSERT_TRUE(nccl->AllReduceSumDevice(data.ptr, count, dtype).ok()) << what;
      EXPECT_TRUE(data.Download(stream.s) == a) << what << " all-reduce";

      DeviceBytes in(count * es), out(count * es);
      in.Upload(b, stream.s);
      ASSERT_TRUE(nccl->AllGatherDevice(in.ptr, count, out.ptr, dtype).ok()) << what;
      EXPECT_TRUE(out.Download(stream.s) == b) << what << " all-gather";
      out.Upload(a, stream.s);
      ASSERT_TRUE(nccl->AllGatherDevice(out.ptr, count, out.ptr, dtype).ok()) << what;
      EXPECT_TRUE(out.Download(stream.s) == a) << what << " in-place all-gather";
      ASSERT_TRUE(nccl->Synchronize().ok()) << what;
    }
  }
  EXPECT_TRUE(nccl->broken().ok());
}

TEST(NcclCollectivesGpu, TypedDeviceCollectivesRejectNullBuffers) {
  RAMI_REQUIRE_CUDA_DEVICE();
  Stream stream;
  std::unique_ptr<NcclCollectives> nccl = CreateSingleRank(stream.s);
  ASSERT_NE(nccl, nullptr);
  DeviceBytes data(8 * 4), out(8 * 4);
  for (kernels::DeviceDType dtype : {kernels::DeviceDType::kBF16, kernels::DeviceDType::kF32}) {
    const std::string what = gpu_test::Name(dtype);
    EXPECT_EQ(nccl->AllReduceSumDevice(nullptr, 8, dtype).code(),
              absl::StatusCode::kInvalidArgument)
        << what;
    EXPECT_EQ(nccl->AllGatherDevice(nullptr, 8, out.ptr, dtype).code(),
              absl::StatusCode::kInvalidArgument)
        << what;
    EXPECT_EQ(nccl->AllGatherDevice(data.ptr, 8, nullptr, dtype).code(),
              absl::StatusCode::kInvalidArgument)
        << what;
    EXPECT_TRUE(nccl->AllReduceSumDevice(nullptr, 0, dtype).ok()) << what;  // nothing to do
    // Argument errors do not break the communicator.
    EXPECT_TRUE(nccl->AllReduceSumDevice(data.ptr, 8, dtype).ok()) << what;
  }
  EXPECT_EQ(nccl->AllReduceSumDevice(data.ptr, 8, static_cast<kernels::DeviceDType>(77)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(nccl->Synchronize().ok());
}

TEST(NcclCollectivesGpu, ManyCollectivesInStreamOrder) {
  RAMI_REQUIRE_CUDA_DEVICE();
  Stream stream;
  std::unique_ptr<NcclCollectives> nccl = CreateSingleRank(stream.s);
  ASSERT_NE(nccl, nullptr);
  constexpr size_t kCount = 4099;
  DeviceFloats data(kCount);
  // Each round overwrites the buffer on the stream and runs a collective on it, without host
  // synchronization: only stream order makes the final contents the last round's.
  for (int round = 0; round < 200; ++round) {
    data.Upload(Iota(kCount, static_cast<float>(round)), stream.s);
    switch (round % 3) {
      case 0:
        ASSERT_TRUE(nccl->AllReduceSum(data.ptr, kCount).ok());
        break;
      case 1:
        ASSERT_TRUE(nccl->Broadcast(data.ptr, kCount, 0).ok());
        break;
      case 2:
        ASSERT_TRUE(nccl->AllGather(data.ptr, kCount, data.ptr).ok());
        break;
    }
  }
  EXPECT_TRUE(nccl->Synchronize().ok());
  EXPECT_TRUE(testing::AllClose(data.Download(stream.s), Iota(kCount, 199.0f), {.bitwise = true}));
  EXPECT_TRUE(nccl->broken().ok());
}

TEST(NcclCollectivesGpu, RejectsBadArguments) {
  RAMI_REQUIRE_CUDA_DEVICE();
  Stream stream;
  std::unique_ptr<NcclCollectives> nccl = CreateSingleRank(stream.s);
  ASSERT_NE(nccl, nullptr);
  DeviceFloats data(8);
  EXPECT_EQ(nccl->AllReduceSum(nullptr, 8).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nccl->AllGather(data.ptr, 8, nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nccl->Broadcast(data.ptr, 8, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(nccl->AllReduceSum(nullptr, 0).ok());  // nothing to do
  // Argument errors do not break the communicator.
  EXPECT_TRUE(nccl->AllReduceSum(data.ptr, 8).ok());
  EXPECT_TRUE(nccl->Synchronize().ok());

  NcclCollectivesOptions no_such_device;
  no_such_device.device = 1 << 20;
  EXPECT_EQ(NcclCollectives::Create(no_such_device, nullptr).status().code(),
            absl::StatusCode::kFailedPrecondition);
  NcclCollectivesOptions no_store;
  no_store.world_size = 2;
  no_store.group_id = "g";
  EXPECT_EQ(NcclCollectives::Create(no_store, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Holds the stream in a host function until released (or 20 s, so a bug cannot hang the test).
struct StreamBlocker {
  std::atomic<bool> released{false};
  static void CUDART_CB Hold(void* self) {
    auto* b = static_cast<StreamBlocker*>(self);
    const absl::Time limit = absl::Now() + absl::Seconds(20);
    while (!b->released.load() && absl::Now() < limit) absl::SleepFor(absl::Milliseconds(1));
  }
};

TEST(NcclCollectivesGpu, WatchdogAbortsAStuckCollective) {
  RAMI_REQUIRE_CUDA_DEVICE();
  Stream stream;
  constexpr absl::Duration kTimeout = absl::Milliseconds(300);
  std::unique_ptr<NcclCollectives> nccl = CreateSingleRank(stream.s, kTimeout);
  ASSERT_NE(nccl, nullptr);
  DeviceFloats data(1024);
  StreamBlocker blocker;
  ASSERT_EQ(cudaLaunchHostFunc(stream.s, &StreamBlocker::Hold, &blocker), cudaSuccess);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(nccl->AllReduceSum(data.ptr, 1024).ok());  // enqueued behind the blocker
  const absl::Status status = nccl->Synchronize();
  const absl::Duration elapsed = absl::Now() - start;
  blocker.released = true;
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_THAT(status.message(), HasSubstr("AllReduceSum"));
  EXPECT_THAT(status.message(), HasSubstr("aborting the communicator"));
  EXPECT_GE(elapsed, kTimeout);
  EXPECT_LT(elapsed, kTimeout + absl::Seconds(5)) << "the watchdog reacted late";
  // The communicator is dead: every later call fails fast, naming the cause.
  const absl::Status later = nccl->AllReduceSum(data.ptr, 1024);
  EXPECT_EQ(later.code(), absl::StatusCode::kFailedPrecondition) << later;
  EXPECT_THAT(later.message(), HasSubstr("did not finish"));
  EXPECT_EQ(nccl->Synchronize().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(nccl->broken().code(), absl::StatusCode::kFailedPrecondition);
  // The stream drains once released (reported, not asserted: after an abort NCCL makes no
  // promise about the aborted operation's own result).
  const cudaError_t drained = cudaStreamSynchronize(stream.s);
  std::printf("stream after abort: %s\n", cudaGetErrorString(drained));
  nccl.reset();  // the destructor must not hang on an aborted communicator
}

TEST(NcclCollectivesGpu, PeerThatNeverComesTimesOut) {
  RAMI_REQUIRE_CUDA_DEVICE();
  Stream stream;
  InMemoryRendezvousStore store;
  constexpr absl::Duration kTimeout = absl::Seconds(2);
  // Rank 1 of 2 waits for rank 0's id in the store: DeadlineExceeded from the id exchange.
  absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<NcclCollectives>> rank1 =
      NcclCollectives::Create({.rank = 1,
                               .world_size = 2,
                               .device = 0,
                               .group_id = "lonely",
                               .stream = stream.s,
                               .timeout = kTimeout},
                              &store);
  EXPECT_EQ(rank1.status().code(), absl::StatusCode::kDeadlineExceeded) << rank1.status();
  EXPECT_LT(absl::Now() - start, kTimeout + absl::Seconds(5));
  // Rank 0 of 2 publishes its id, then its communicator waits for rank 1 in vain: the creation
  // is aborted after the timeout (an NCCL error instead would also be a clean failure).
  start = absl::Now();
  absl::StatusOr<std::unique_ptr<NcclCollectives>> rank0 =
      NcclCollectives::Create({.rank = 0,
                               .world_size = 2,
                               .device = 0,
                               .group_id = "lonely",
                               .stream = stream.s,
                               .timeout = kTimeout},
                              &store);
  EXPECT_FALSE(rank0.ok());
  EXPECT_THAT(rank0.status().code(),
              ::testing::AnyOf(absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kUnavailable))
      << rank0.status();
  EXPECT_LT(absl::Now() - start, kTimeout + absl::Seconds(20));
  EXPECT_TRUE(store.Get({"lonely/nccl/unique_id"}, absl::ZeroDuration()).ok());
}

}  // namespace
}  // namespace rami
