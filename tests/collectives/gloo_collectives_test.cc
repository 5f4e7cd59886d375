// GlooCollectives with ranks as threads of one process, on loopback through an in-memory
// rendezvous store: results checked element by element against self-describing data (values
// built from the rank and the index), and failures (a stuck or vanished peer, a rank that never
// arrives) checked to end within the configured timeout with a clear status.
#include "worker/collectives/gloo_collectives.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/collectives/rendezvous_store.h"

namespace rami {

using collectives::GlooCollectives;
using collectives::InMemoryRendezvousStore;
using collectives::RendezvousStore;

namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(5);  // healthy groups never come close
using Group = std::vector<std::unique_ptr<GlooCollectives>>;

// Creates the `world_size` ranks of one group concurrently (each Create blocks until all
// ranks have arrived).
Group CreateGroup(int world_size, RendezvousStore& store, const std::string& key_prefix,
                  absl::Duration timeout = kTimeout) {
  std::vector<absl::StatusOr<std::unique_ptr<GlooCollectives>>> created(world_size);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < world_size; ++rank) {
    threads.emplace_back([&, rank] {
      created[rank] =
          GlooCollectives::Create(rank, world_size, &store, key_prefix, "127.0.0.1", timeout);
    });
  }
  for (std::thread& thread : threads) thread.join();
  Group group;
  for (auto& collectives : created) {
    EXPECT_TRUE(collectives.ok()) << collectives.status();
    if (collectives.ok()) group.push_back(std::move(*collectives));
  }
  return group;
}

// Runs fn(rank, collectives) on every rank at once, one thread each.
template <typename Fn>
void OnEveryRank(Group& group, Fn fn) {
  std::vector<std::thread> threads;
  for (int rank = 0; rank < static_cast<int>(group.size()); ++rank) {
    threads.emplace_back([&, rank] { fn(rank, *group[rank]); });
  }
  for (std::thread& thread : threads) thread.join();
}

// Small integers, so every sum below is exact in float.
float Value(int rank, size_t i) {
  return static_cast<float>(rank * 1000 + static_cast<int>(i % 97));
}

class GlooWorld : public ::testing::TestWithParam<int> {
 protected:
  int world_size() const { return GetParam(); }
  InMemoryRendezvousStore store_;
};

TEST_P(GlooWorld, AllReduceSumOfAwkwardSizes) {
  Group group = CreateGroup(world_size(), store_, "allreduce");
  ASSERT_EQ(static_cast<int>(group.size()), world_size());
  const int w = world_size();
  for (size_t count : {1, 3, 1000, 100003}) {
    OnEveryRank(group, [&](int rank, GlooCollectives& collectives) {
      EXPECT_EQ(collectives.rank(), rank);
      EXPECT_EQ(collectives.world_size(), w);
      std::vector<float> data(count);
      for (size_t i = 0; i < count; ++i) data[i] = Value(rank, i);
      ASSERT_TRUE(collectives.AllReduceSum(data.data(), count).ok());
      // Σ_r (1000 r + i % 97) = 1000 w (w - 1) / 2 + w (i % 97).
      for (size_t i = 0; i < count; ++i) {
        ASSERT_EQ(data[i], static_cast<float>(1000 * w * (w - 1) / 2 + w * (i % 97)))
            << "count " << count << " rank " << rank << " element " << i;
      }
    });
  }
}

TEST_P(GlooWorld, AllGatherIsRankMajor) {
  Group group = CreateGroup(world_size(), store_, "allgather");
  ASSERT_EQ(static_cast<int>(group.size()), world_size());
  for (size_t count : {1, 3, 1000, 100003}) {
    for (bool in_place : {false, true}) {
      OnEveryRank(group, [&](int rank, GlooCollectives& collectives) {
        std::vector<float> out(count * world_size(), -1.0f);
        std::vector<float> in(count);
        for (size_t i = 0; i < count; ++i) in[i] = Value(rank, i);
        if (in_place) std::copy(in.begin(), in.end(), out.begin() + rank * count);
        const float* source = in_place ? out.data() + rank * count : in.data();
        ASSERT_TRUE(collectives.AllGather(source, count, out.data()).ok());
        for (int r = 0; r < world_size(); ++r) {
          for (size_t i = 0; i < count; ++i) {
            ASSERT_EQ(out[r * count + i], Value(r, i))
                << "count " << count << " in_place " << in_place << " rank " << rank << " slot "
                << r << " element " << i;
          }
        }
      });
    }
  }
}

TEST_P(GlooWorld, BroadcastFromEachRoot) {
  Group group = CreateGroup(world_size(), store_, "broadcast");
  ASSERT_EQ(static_cast<int>(group.size()), world_size());
  for (size_t count : {1, 3, 100003}) {
    for (int root = 0; root < world_size(); ++root) {
      OnEveryRank(group, [&](int rank, GlooCollectives& collectives) {
        std::vector<float> data(count);
        for (size_t i = 0; i < count; ++i) data[i] = Value(rank, i);
        ASSERT_TRUE(collectives.Broadcast(data.data(), count, root).ok());
        for (size_t i = 0; i < count; ++i) {
          ASSERT_EQ(data[i], Value(root, i))
              << "count " << count << " root " << root << " rank " << rank << " element " << i;
        }
      });
    }
  }
}

// 200 collectives back to back, kinds and sizes interleaved: each one's messages must be
// matched with the same collective on the peers, never with a neighbour.
TEST_P(GlooWorld, ManyConsecutiveMixedCollectives) {
  Group group = CreateGroup(world_size(), store_, "mixed");
  ASSERT_EQ(static_cast<int>(group.size()), world_size());
  const int w = world_size();
  OnEveryRank(group, [&](int rank, GlooCollectives& collectives) {
    for (int step = 0; step < 200; ++step) {
      const size_t count = 1 + (step * 37) % 500;
      std::vector<float> data(count);
      for (size_t i = 0; i < count; ++i) data[i] = Value(rank, i) + step;
      switch (step % 3) {
        case 0: {
          ASSERT_TRUE(collectives.AllReduceSum(data.data(), count).ok()) << step;
          for (size_t i = 0; i < count; ++i) {
            ASSERT_EQ(data[i], static_cast<float>(1000 * w * (w - 1) / 2 + w * (i % 97 + step)))
                << "step " << step << " element " << i;
          }
          break;
        }
        case 1: {
          std::vector<float> out(count * w);
          ASSERT_TRUE(collectives.AllGather(data.data(), count, out.data()).ok()) << step;
          for (int r = 0; r < w; ++r) {
            for (size_t i = 0; i < count; ++i) {
              ASSERT_EQ(out[r * count + i], Value(r, i) + step) << "step " << step;
            }
          }
          break;
        }
        case 2: {
          const int root = step % w;
          ASSERT_TRUE(collectives.Broadcast(data.data(), count, root).ok()) << step;
          for (size_t i = 0; i < count; ++i) {
            ASSERT_EQ(data[i], Value(root, i) + step) << "step " << step;
          }
          break;
        }
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(WorldSizes, GlooWorld, ::testing::Values(1, 2, 3),
                         [](const auto& info) { return absl::StrCat("world", info.param); });

TEST(GlooCollectives, WorldOfOneNeedsNoStore) {
  auto collectives = GlooCollectives::Create(0, 1, nullptr, "solo", "127.0.0.1", kTimeout);
  ASSERT_TRUE(collectives.ok()) << collectives.status();
  std::vector<float> data = {1, 2, 3}, out(3);
  EXPECT_TRUE((*collectives)->AllReduceSum(data.data(), 3).ok());
  EXPECT_TRUE((*collectives)->AllGather(data.data(), 3, out.data()).ok());
  EXPECT_EQ(out, data);
  EXPECT_TRUE((*collectives)->Broadcast(data.data(), 3, 0).ok());
  EXPECT_EQ(data, (std::vector<float>{1, 2, 3}));
}

TEST(GlooCollectives, RejectsBadArguments) {
  InMemoryRendezvousStore store;
  EXPECT_EQ(GlooCollectives::Create(2, 2, &store, "p", "127.0.0.1", kTimeout).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GlooCollectives::Create(0, 2, nullptr, "p", "127.0.0.1", kTimeout).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      GlooCollectives::Create(0, 2, &store, "p", "127.0.0.1", absl::ZeroDuration()).status().code(),
      absl::StatusCode::kInvalidArgument);
  Group group = CreateGroup(2, store, "args");
  ASSERT_EQ(group.size(), 2u);
  OnEveryRank(group, [](int, GlooCollectives& collectives) {
    float x = 1;
    EXPECT_EQ(collectives.Broadcast(&x, 1, 2).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(collectives.AllReduceSum(nullptr, 4).code(), absl::StatusCode::kInvalidArgument);
    // Rejected arguments touch no connection: the group still works.
    EXPECT_TRUE(collectives.AllReduceSum(&x, 1).ok());
    EXPECT_EQ(x, 2.0f);
    EXPECT_TRUE(collectives.broken().ok());
  });
}

// Several incarnations of a group share one store, told apart by their key prefix.
TEST(GlooCollectives, IncarnationsShareAStore) {
  InMemoryRendezvousStore store;
  for (int incarnation = 0; incarnation < 3; ++incarnation) {
    Group group = CreateGroup(2, store, absl::StrCat("incarnation", incarnation));
    ASSERT_EQ(group.size(), 2u);
    OnEveryRank(group, [&](int rank, GlooCollectives& collectives) {
      float x = static_cast<float>(rank + incarnation);
      ASSERT_TRUE(collectives.AllReduceSum(&x, 1).ok());
      EXPECT_EQ(x, static_cast<float>(1 + 2 * incarnation));
    });
  }
}

// Rank 1 stops participating: rank 0's collective ends within the timeout, and then the group
// is broken on both sides without anyone waiting out a second timeout.
TEST(GlooCollectivesFailure, StuckPeerTimesOutAndBreaksTheGroup) {
  InMemoryRendezvousStore store;
  const absl::Duration timeout = absl::Seconds(1);
  Group group = CreateGroup(2, store, "stuck", timeout);
  ASSERT_EQ(group.size(), 2u);
  OnEveryRank(group, [](int, GlooCollectives& collectives) {
    std::vector<float> x(10, 1.0f);
    ASSERT_TRUE(collectives.AllReduceSum(x.data(), x.size()).ok());
  });

  std::vector<float> data(1000, 1.0f);
  absl::Time start = absl::Now();
  const absl::Status failed = group[0]->AllReduceSum(data.data(), data.size());
  const absl::Duration to_fail = absl::Now() - start;
  EXPECT_EQ(failed.code(), absl::StatusCode::kDeadlineExceeded) << failed;
  EXPECT_THAT(failed.message(), HasSubstr("AllReduceSum"));
  EXPECT_THAT(failed.message(), HasSubstr("rank 0 of 2"));
  EXPECT_THAT(failed.message(), HasSubstr("timeout 1s"));
  EXPECT_GE(to_fail, timeout * 0.9);
  EXPECT_LT(to_fail, timeout * 2);

  start = absl::Now();
  const absl::Status again = group[0]->Broadcast(data.data(), data.size(), 0);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_THAT(again.message(), HasSubstr("collectives broken by an earlier failure"));
  EXPECT_THAT(again.message(), HasSubstr("AllReduceSum"));

  // The failed rank closed its connections, so the late peer fails at once.
  start = absl::Now();
  const absl::Status late = group[1]->AllReduceSum(data.data(), data.size());
  const absl::Duration late_to_fail = absl::Now() - start;
  EXPECT_FALSE(late.ok());
  EXPECT_LT(late_to_fail, timeout / 2) << late;
  EXPECT_THAT(late.message(), HasSubstr("rank 1 of 2"));
  EXPECT_EQ(group[1]->AllGather(data.data(), 1, data.data()).code(),
            absl::StatusCode::kFailedPrecondition);
  std::cerr << "stuck peer: rank 0 failed after " << to_fail << ": " << failed
            << "\nlate rank 1 failed after " << late_to_fail << ": " << late << "\n";
}

// Rank 1's process is gone (its connections closed): rank 0 fails fast, not after the timeout.
TEST(GlooCollectivesFailure, VanishedPeerFailsFast) {
  InMemoryRendezvousStore store;
  const absl::Duration timeout = absl::Seconds(1);
  Group group = CreateGroup(2, store, "vanished", timeout);
  ASSERT_EQ(group.size(), 2u);
  group[1].reset();
  std::vector<float> data(1000, 1.0f);
  const absl::Time start = absl::Now();
  const absl::Status failed = group[0]->AllReduceSum(data.data(), data.size());
  const absl::Duration to_fail = absl::Now() - start;
  EXPECT_FALSE(failed.ok());
  EXPECT_LT(to_fail, timeout * 2) << failed;
  EXPECT_THAT(failed.message(), HasSubstr("rank 0 of 2"));
  EXPECT_EQ(group[0]->AllReduceSum(data.data(), data.size()).code(),
            absl::StatusCode::kFailedPrecondition);
  std::cerr << "vanished peer: rank 0 failed after " << to_fail << ": " << failed << "\n";
}

TEST(GlooCollectivesFailure, RendezvousTimesOutWhenARankNeverArrives) {
  InMemoryRendezvousStore store;
  const absl::Duration timeout = absl::Milliseconds(500);
  const absl::Time start = absl::Now();
  auto collectives = GlooCollectives::Create(0, 2, &store, "alone", "127.0.0.1", timeout);
  const absl::Duration to_fail = absl::Now() - start;
  ASSERT_FALSE(collectives.ok());
  EXPECT_EQ(collectives.status().code(), absl::StatusCode::kDeadlineExceeded)
      << collectives.status();
  EXPECT_THAT(collectives.status().message(), HasSubstr("rendezvous"));
  EXPECT_THAT(collectives.status().message(), HasSubstr("rank 0 of 2"));
  EXPECT_THAT(collectives.status().message(), HasSubstr("alone/1"));
  EXPECT_GE(to_fail, timeout * 0.9);
  EXPECT_LT(to_fail, timeout * 3);
  std::cerr << "rendezvous failed after " << to_fail << ": " << collectives.status() << "\n";
}

}  // namespace
}  // namespace rami
