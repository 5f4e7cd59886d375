// The host-only half of the NCCL rendezvous: rank 0 publishes the unique id in the rendezvous
// store and every other rank reads the same bytes; the key is derived from the group id; a
// missing or malformed id gives a clear status instead of a communicator built from garbage.
#include "worker/collectives/nccl_unique_id.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/collectives/rendezvous_store.h"

namespace rami {

using collectives::ExchangeNcclUniqueId;
using collectives::InMemoryRendezvousStore;
using collectives::kNcclUniqueIdBytes;
using collectives::NcclUniqueIdKey;

namespace {

using ::testing::HasSubstr;

// A self-describing id: byte i is (seed + i) mod 256.
std::string FakeId(int seed, size_t size = kNcclUniqueIdBytes) {
  std::string id(size, '\0');
  for (size_t i = 0; i < size; ++i) id[i] = static_cast<char>((seed + i) % 256);
  return id;
}

absl::StatusOr<std::string> NeverCalled() {
  ADD_FAILURE() << "only rank 0 creates the id";
  return absl::InternalError("called");
}

TEST(NcclUniqueId, KeyIsDerivedFromTheGroupId) {
  EXPECT_EQ(NcclUniqueIdKey("job7-g0"), "job7-g0/nccl/unique_id");
  EXPECT_NE(NcclUniqueIdKey("a"), NcclUniqueIdKey("b"));
}

TEST(NcclUniqueId, EveryRankGetsRankZerosBytes) {
  InMemoryRendezvousStore store;
  constexpr int kWorld = 4;
  std::vector<absl::StatusOr<std::string>> ids(kWorld);
  std::vector<std::thread> threads;
  // Ranks 1..3 start first and wait for rank 0, which arrives a little later.
  for (int rank = kWorld - 1; rank >= 0; --rank) {
    threads.emplace_back([&, rank] {
      if (rank == 0) absl::SleepFor(absl::Milliseconds(50));
      ids[rank] = ExchangeNcclUniqueId(
          rank, store, "group-a", absl::Seconds(5),
          rank == 0 ? +[]() -> absl::StatusOr<std::string> { return FakeId(42); } : NeverCalled);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int rank = 0; rank < kWorld; ++rank) {
    ASSERT_TRUE(ids[rank].ok()) << "rank " << rank << ": " << ids[rank].status();
    EXPECT_EQ(*ids[rank], FakeId(42)) << "rank " << rank;
  }
  // The bytes are in the store under the group's key, binary-safe (embedded NULs included).
  absl::StatusOr<std::vector<std::string>> stored =
      store.Get({NcclUniqueIdKey("group-a")}, absl::ZeroDuration());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->front(), FakeId(42));
}

TEST(NcclUniqueId, GroupsSharingAStoreDoNotMix) {
  InMemoryRendezvousStore store;
  ASSERT_TRUE(ExchangeNcclUniqueId(0, store, "old", absl::Seconds(1), [] {
                return absl::StatusOr<std::string>(FakeId(1));
              }).ok());
  ASSERT_TRUE(ExchangeNcclUniqueId(0, store, "new", absl::Seconds(1), [] {
                return absl::StatusOr<std::string>(FakeId(2));
              }).ok());
  absl::StatusOr<std::string> id =
      ExchangeNcclUniqueId(1, store, "new", absl::Seconds(1), NeverCalled);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, FakeId(2));
}

TEST(NcclUniqueId, MissingRankZeroTimesOutNamingTheKey) {
  InMemoryRendezvousStore store;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> id =
      ExchangeNcclUniqueId(2, store, "lonely", absl::Milliseconds(100), NeverCalled);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ASSERT_EQ(id.status().code(), absl::StatusCode::kDeadlineExceeded) << id.status();
  EXPECT_THAT(id.status().message(), HasSubstr("rank 2"));
  EXPECT_THAT(id.status().message(), HasSubstr("lonely/nccl/unique_id"));
}

TEST(NcclUniqueId, MalformedIdInTheStoreIsRejected) {
  InMemoryRendezvousStore store;
  ASSERT_TRUE(store.Set(NcclUniqueIdKey("g"), "too short").ok());
  absl::StatusOr<std::string> id =
      ExchangeNcclUniqueId(1, store, "g", absl::Seconds(1), NeverCalled);
  ASSERT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << id.status();
  EXPECT_THAT(id.status().message(), HasSubstr("9 bytes, expected 128"));
  EXPECT_THAT(id.status().message(), HasSubstr("g/nccl/unique_id"));
}

TEST(NcclUniqueId, RankZeroChecksItsOwnIdAndErrors) {
  InMemoryRendezvousStore store;
  absl::StatusOr<std::string> id = ExchangeNcclUniqueId(0, store, "g", absl::Seconds(1), [] {
    return absl::StatusOr<std::string>(FakeId(3, kNcclUniqueIdBytes + 1));
  });
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << id.status();
  // Nothing was published, so a peer would time out rather than join with a bad id.
  EXPECT_FALSE(store.Get({NcclUniqueIdKey("g")}, absl::ZeroDuration()).ok());

  id = ExchangeNcclUniqueId(0, store, "g", absl::Seconds(1), [] {
    return absl::StatusOr<std::string>(absl::UnavailableError("ncclGetUniqueId: no network"));
  });
  EXPECT_EQ(id.status().code(), absl::StatusCode::kUnavailable) << id.status();
}

TEST(NcclUniqueId, RejectsEmptyGroupAndNegativeRank) {
  InMemoryRendezvousStore store;
  EXPECT_EQ(ExchangeNcclUniqueId(1, store, "", absl::Seconds(1), NeverCalled).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExchangeNcclUniqueId(-1, store, "g", absl::Seconds(1), NeverCalled).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rami
