// KvCopyBatches against a brute-force reference: every launch's ops are independent (no slot one
// op writes is read or written by another op of the launch), the cut is greedy (each launch but
// the first starts at an op that conflicts with the launch before), and ops declared independent
// are never cut apart yet are still checked against the ops after them.
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kv_copy.h"
#include "worker/kv/kv_copy_batches.h"

namespace rami::kv {
namespace {

using kernels::KvCopyOp;
using Slot = std::pair<int32_t, int32_t>;  // (page, slot)

constexpr int kPage = 4;

// Whether op `b` conflicts with any of ops [from, to): one writes a slot the other touches.
bool Conflicts(const std::vector<KvCopyOp>& ops, size_t from, size_t to, size_t b) {
  auto slots = [](const KvCopyOp& op, bool dst) {
    std::set<Slot> s;
    for (int32_t j = 0; j < op.num_slots; ++j) {
      s.insert(dst ? Slot{op.dst_page, op.dst_slot + j} : Slot{op.src_page, op.src_slot + j});
    }
    return s;
  };
  auto meets = [](const std::set<Slot>& x, const std::set<Slot>& y) {
    for (const Slot& s : x) {
      if (y.count(s) != 0) return true;
    }
    return false;
  };
  const std::set<Slot> br = slots(ops[b], false), bw = slots(ops[b], true);
  for (size_t a = from; a < to; ++a) {
    const std::set<Slot> ar = slots(ops[a], false), aw = slots(ops[a], true);
    if (meets(aw, br) || meets(aw, bw) || meets(ar, bw)) return true;
  }
  return false;
}

// Random ops over a few pages, so that conflicts are common.
std::vector<KvCopyOp> RandomOps(std::mt19937& rng, int count, int pages) {
  std::vector<KvCopyOp> ops;
  for (int i = 0; i < count; ++i) {
    const int32_t n = std::uniform_int_distribution<int32_t>(1, kPage)(rng);
    auto slot = [&] { return std::uniform_int_distribution<int32_t>(0, kPage - n)(rng); };
    auto page = [&] { return std::uniform_int_distribution<int32_t>(0, pages - 1)(rng); };
    ops.push_back({page(), slot(), page(), slot(), n});
  }
  return ops;
}

void ExpectGreedyIndependent(const std::vector<KvCopyOp>& ops, const std::vector<int32_t>& bounds,
                             size_t independent) {
  ASSERT_GE(bounds.size(), 2u);
  ASSERT_EQ(bounds.front(), 0);
  ASSERT_EQ(bounds.back(), static_cast<int32_t>(ops.size()));
  for (size_t l = 0; l + 1 < bounds.size(); ++l) {
    const size_t begin = bounds[l], end = bounds[l + 1];
    ASSERT_LT(begin, end) << "launch " << l << " is empty";
    for (size_t b = std::max(begin + 1, independent); b < end; ++b) {
      EXPECT_FALSE(Conflicts(ops, begin, b, b)) << "op " << b << " in launch " << l;
    }
    if (l > 0) {
      EXPECT_GE(begin, independent) << "a cut inside the independent ops";
      EXPECT_TRUE(Conflicts(ops, bounds[l - 1], begin, begin)) << "launch " << l << " cut early";
    }
  }
}

TEST(KvCopyBatchesTest, LaunchesAreIndependentAndGreedy) {
  std::mt19937 rng(7);
  EXPECT_TRUE(KvCopyBatches({}, kPage).empty());
  int64_t launches = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const std::vector<KvCopyOp> ops = RandomOps(rng, 1 + trial % 40, 2 + trial % 9);
    const std::vector<int32_t> bounds = KvCopyBatches(ops, kPage);
    ExpectGreedyIndependent(ops, bounds, 0);
    launches += static_cast<int64_t>(bounds.size()) - 1;
  }
  EXPECT_GT(launches, 400) << "the ops conflict too rarely to test the cuts";
}

TEST(KvCopyBatchesTest, IndependentOpsStayTogetherAndAreCheckedAgainstTheRest) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    // Independent ops: single slots, each writing its own page's slot from a page nobody writes.
    const int prefix = 1 + trial % 12;
    std::vector<KvCopyOp> ops;
    for (int i = 0; i < prefix; ++i) ops.push_back({100 + i % 3, i % kPage, 200 + i, 0, 1});
    if (trial % 2 == 0) {  // then ops that read or overwrite what they wrote
      const std::vector<KvCopyOp> rest = RandomOps(rng, 1 + trial % 20, 4);
      ops.insert(ops.end(), rest.begin(), rest.end());
      ops.push_back({200, 0, 0, 0, 1});  // reads the first promotion: a new launch
    }
    const std::vector<int32_t> bounds = KvCopyBatches(ops, kPage, prefix);
    ExpectGreedyIndependent(ops, bounds, prefix);
    EXPECT_EQ(bounds, KvCopyBatches(ops, kPage)) << "trial " << trial;
    if (trial % 2 == 0) {
      EXPECT_GE(bounds.size(), 3u) << "trial " << trial;
    }
  }
}

}  // namespace
}  // namespace rami::kv
