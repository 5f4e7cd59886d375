// Dense-policy KV-cache bookkeeping (the DMS and window policies: dms_cache_test.cc): exact page
// needs, all-or-nothing reservation, no leaks.
#include <random>

#include "gtest/gtest.h"
#include "worker/kv/kv_cache.h"

namespace rami {

using kv::CachePolicy;
using kv::KvCache;
using kv::SeqId;
using kv::StepStreams;

namespace {

constexpr int kLayers = 2, kHeads = 3, kHeadDim = 4;

TEST(KvCache, AnnouncedPagesAreTheAllocatedPages) {
  KvCache cache({.page_size = 4, .num_pages = 100}, kLayers, kHeads, kHeadDim,
                CachePolicy::Dense());
  ASSERT_TRUE(cache.AddSequence(7).ok());
  EXPECT_EQ(cache.AddSequence(7).code(), absl::StatusCode::kAlreadyExists);
  // 5 tokens → 2 pages in each of the 6 (layer, head) streams.
  EXPECT_EQ(cache.PagesToAppend(7, 5), 12);
  const std::pair<SeqId, int64_t> append{7, 5};
  ASSERT_TRUE(cache.ReserveAppend({&append, 1}).ok());
  cache.CommitAppend(7, 5);
  EXPECT_EQ(cache.pool().free_pages(), 88);
  EXPECT_EQ(cache.Length(7), 5);
  EXPECT_EQ(cache.PagesToAppend(7, 3), 0);  // fits in the second page
  EXPECT_EQ(cache.PagesToAppend(7, 4), 6);  // spills into a third
  const StepStreams streams = cache.BuildStepStreams(std::vector<SeqId>{7});
  ASSERT_EQ(streams.window_page_start.size(), 6u);
  EXPECT_EQ(streams.page_table.size(), 12u);
  EXPECT_TRUE(streams.flag_columns.empty());  // dense: nothing to evict
  ASSERT_TRUE(cache.FreeSequence(7).ok());
  EXPECT_EQ(cache.pool().free_pages(), 100);
  EXPECT_EQ(cache.FreeSequence(7).code(), absl::StatusCode::kNotFound);
}

TEST(KvCache, ReservationIsAllOrNothing) {
  KvCache cache({.page_size = 2, .num_pages = 20}, kLayers, kHeads, kHeadDim, CachePolicy::Dense());
  ASSERT_TRUE(cache.AddSequence(1).ok());
  ASSERT_TRUE(cache.AddSequence(2).ok());
  // 1: 2 tokens → 6 pages; 2: 7 tokens → 24 pages; together more than 20.
  const std::vector<std::pair<SeqId, int64_t>> appends = {{1, 2}, {2, 7}};
  const absl::Status status = cache.ReserveAppend(appends);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find("30 pages"), std::string::npos) << status;
  EXPECT_EQ(cache.pool().free_pages(), 20);
  EXPECT_EQ(cache.Length(1), 0);
  const std::vector<std::pair<SeqId, int64_t>> unknown = {{1, 1}, {3, 1}};
  EXPECT_EQ(cache.ReserveAppend(unknown).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache.pool().free_pages(), 20);
}

TEST(KvCache, RandomOperationsNeverLeakPages) {
  std::mt19937 rng(11);
  KvCache cache({.page_size = 3, .num_pages = 200}, kLayers, kHeads, kHeadDim,
                CachePolicy::Dense());
  std::map<SeqId, int64_t> lengths;
  for (int op = 0; op < 2000; ++op) {
    const SeqId id = rng() % 8;
    if (!cache.Contains(id)) {
      ASSERT_TRUE(cache.AddSequence(id).ok());
      lengths[id] = 0;
    } else if (rng() % 5 == 0) {
      ASSERT_TRUE(cache.FreeSequence(id).ok());
      lengths.erase(id);
    } else {
      const int64_t n = 1 + rng() % 6;
      const int before = cache.pool().free_pages();
      const int64_t announced = cache.PagesToAppend(id, n);
      const std::pair<SeqId, int64_t> append{id, n};
      const absl::Status s = cache.ReserveAppend({&append, 1});
      if (s.ok()) {
        cache.CommitAppend(id, n);
        lengths[id] += n;
        EXPECT_EQ(before - cache.pool().free_pages(), announced);
      } else {
        EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
        EXPECT_GT(announced, before);
        EXPECT_EQ(cache.pool().free_pages(), before);
      }
    }
    // Pages in use are exactly ceil(length / page) per stream, counted independently.
    int64_t in_use = 0;
    for (const auto& [seq, len] : lengths) {
      EXPECT_EQ(cache.Length(seq), len);
      in_use += (len + 2) / 3 * kLayers * kHeads;
    }
    ASSERT_EQ(cache.pool().free_pages(), 200 - in_use);
  }
  for (const auto& [seq, len] : lengths) ASSERT_TRUE(cache.FreeSequence(seq).ok());
  EXPECT_EQ(cache.pool().free_pages(), 200);
}

}  // namespace
}  // namespace rami

namespace rami {
namespace {

TEST(KvCache, UnsharedPagesAreWhatFreeingReturns) {
  KvCache cache({.page_size = 4, .num_pages = 100}, kLayers, kHeads, kHeadDim,
                CachePolicy::Dense());
  ASSERT_TRUE(cache.AddSequence(1).ok());
  const std::pair<SeqId, int64_t> append{1, 6};  // one full page + a partial one per stream
  ASSERT_TRUE(cache.ReserveAppend({&append, 1}).ok());
  cache.CommitAppend(1, 6);
  EXPECT_EQ(cache.SequenceStatsOf(1).unshared_pages, 12);
  ASSERT_TRUE(cache.Fork(1, std::vector<SeqId>{2}).ok());
  // The full pages are shared now; each keeps its own partial tail.
  EXPECT_EQ(cache.SequenceStatsOf(1).unshared_pages, 6);
  EXPECT_EQ(cache.SequenceStatsOf(2).unshared_pages, 6);
  const int free_before = cache.pool().free_pages();
  ASSERT_TRUE(cache.FreeSequence(2).ok());
  EXPECT_EQ(cache.pool().free_pages() - free_before, 6);
  EXPECT_EQ(cache.SequenceStatsOf(1).unshared_pages, 12);
}

}  // namespace
}  // namespace rami
