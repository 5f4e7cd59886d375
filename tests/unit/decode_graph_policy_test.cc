// DecodeGraphPolicy (worker/engine/decode_graph_policy.h): when a decode step runs eagerly, is
// captured as a CUDA graph or replays one — per key, on pointer moves and failed captures, and
// across the ranks of a group, which must never take different paths after a failure.
#include "worker/engine/decode_graph_policy.h"

#include <vector>

#include "gtest/gtest.h"

namespace rami {
namespace {

using engine::DecodeGraphPolicy;
using Action = DecodeGraphPolicy::Action;

// One step of one rank: Begin, the capture's outcome when asked, the agreement.
Action Step(DecodeGraphPolicy& p, DecodeGraphPolicy::Key key, const std::vector<const void*>& ptrs,
            bool capture_ok, bool others_failed = false) {
  if (p.Begin(key, ptrs) == Action::kCapture) p.Captured(capture_ok);
  return p.Agree(p.failed_here() || others_failed);
}

const std::vector<const void*> kA = {reinterpret_cast<const void*>(0x10)};
const std::vector<const void*> kB = {reinterpret_cast<const void*>(0x20)};

TEST(DecodeGraphPolicy, EagerThenCaptureThenReplay) {
  DecodeGraphPolicy p;
  EXPECT_EQ(p.Begin({1, 1}, kA), Action::kEager);  // warm-up
  EXPECT_EQ(p.Agree(false), Action::kEager);
  EXPECT_EQ(p.Begin({1, 1}, kA), Action::kCapture);
  p.Captured(true);
  EXPECT_EQ(p.Agree(false), Action::kReplay);
  EXPECT_EQ(p.Begin({1, 1}, kA), Action::kReplay);
  EXPECT_FALSE(p.Dropped());
  EXPECT_EQ(p.Agree(false), Action::kReplay);
  // Another key starts its own warm-up.
  EXPECT_EQ(Step(p, {8, 2}, kA, true), Action::kEager);
  const engine::DecodeGraphStats& s = p.stats();
  EXPECT_EQ(s.eager, 2);
  EXPECT_EQ(s.captures, 1);
  EXPECT_EQ(s.replays, 2);
  EXPECT_EQ(s.failed, 0);
}

TEST(DecodeGraphPolicy, MovedPointersDropTheGraphAndCaptureAgain) {
  DecodeGraphPolicy p;
  Step(p, {4, 1}, kA, true);
  ASSERT_EQ(Step(p, {4, 1}, kA, true), Action::kReplay);
  EXPECT_EQ(p.Begin({4, 1}, kB), Action::kCapture);
  EXPECT_TRUE(p.Dropped());  // the old graph read kA
  p.Captured(true);
  EXPECT_EQ(p.Agree(false), Action::kReplay);
  EXPECT_EQ(Step(p, {4, 1}, kB, true), Action::kReplay);
  EXPECT_EQ(p.stats().captures, 2);
}

TEST(DecodeGraphPolicy, AFailedCaptureMakesTheKeyEagerForGood) {
  DecodeGraphPolicy p;
  Step(p, {2, 1}, kA, true);
  EXPECT_EQ(Step(p, {2, 1}, kA, /*capture_ok=*/false), Action::kEager);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Step(p, {2, 1}, kA, true), Action::kEager);
  EXPECT_EQ(p.stats().failed, 1);
  EXPECT_EQ(p.stats().captures, 0);
  // Other keys still get graphs.
  Step(p, {16, 1}, kA, true);
  EXPECT_EQ(Step(p, {16, 1}, kA, true), Action::kReplay);
}

// Two ranks whose keys differ (decode splits follow each rank's own heads): rank 0's capture
// fails, rank 1's succeeds in the same step — after the agreement both run eagerly, rank 1 drops
// its fresh graph, and both keys stay eager.
TEST(DecodeGraphPolicy, OneRanksFailedCaptureMakesEveryRankEager) {
  DecodeGraphPolicy rank0, rank1;
  const DecodeGraphPolicy::Key k0 = {8, 1}, k1 = {8, 2};
  Step(rank0, k0, kA, true);
  Step(rank1, k1, kA, true);
  ASSERT_EQ(rank0.Begin(k0, kA), Action::kCapture);
  ASSERT_EQ(rank1.Begin(k1, kA), Action::kCapture);
  rank0.Captured(false);
  rank1.Captured(true);
  const bool any = rank0.failed_here() || rank1.failed_here();  // the all-reduce
  EXPECT_EQ(rank0.Agree(any), Action::kEager);
  EXPECT_EQ(rank1.Agree(any), Action::kEager);
  EXPECT_TRUE(rank1.Dropped());  // its graph is destroyed, never launched
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Step(rank0, k0, kA, true), Action::kEager);
    EXPECT_EQ(Step(rank1, k1, kA, true), Action::kEager);
  }
  EXPECT_EQ(rank1.stats().captures, 0);
  EXPECT_EQ(rank1.stats().failed, 1);
}

// A rank-local recapture (its table grew) that fails while the other rank replays: both run the
// step eagerly and both keys become eager.
TEST(DecodeGraphPolicy, ARecaptureFailureStopsTheReplayingRankToo) {
  DecodeGraphPolicy rank0, rank1;
  for (DecodeGraphPolicy* p : {&rank0, &rank1}) {
    Step(*p, {4, 1}, kA, true);
    ASSERT_EQ(Step(*p, {4, 1}, kA, true), Action::kReplay);
  }
  ASSERT_EQ(rank0.Begin({4, 1}, kB), Action::kCapture);  // rank 0's pointers moved
  ASSERT_EQ(rank1.Begin({4, 1}, kA), Action::kReplay);
  rank0.Captured(false);
  const bool any = rank0.failed_here() || rank1.failed_here();
  EXPECT_EQ(rank0.Agree(any), Action::kEager);
  EXPECT_EQ(rank1.Agree(any), Action::kEager);
  EXPECT_TRUE(rank1.Dropped());  // the graph it was replaying is destroyed
  EXPECT_EQ(Step(rank1, {4, 1}, kA, true), Action::kEager);
  EXPECT_EQ(Step(rank0, {4, 1}, kB, true), Action::kEager);
}

}  // namespace
}  // namespace rami
