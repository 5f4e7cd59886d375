// Prefix-cache snapshots through the Engine (StepPlan::snapshots, PlanPrefill::copy_of) on the CPU
// backend, against a cold run of the same prompt (tests/testing/snapshot_scenario.h): a warm run
// from the snapshot, which prefills only [P, L) in the cold run's chunks, must be the cold run bit
// for bit — tokens, log-probs, top tokens, prompt scores (the first token after P scored from the
// snapshot's logits), and per step the live tokens, decisions and decode page needs of the root
// and every branch. The snapshot is copied twice (copying changed nothing), then freed while its
// second copy still decodes; at the end every page is back in the pool.
//
// Each policy — dense, window:4:8 (W = 7), DMS with borrowed decisions, DMS with the adapter
// (W = 8) — at TP 1 and TP 2 (ranks as threads), pages of 4 tokens, for P inside a page, P ≤ W
// (nothing has left the window), P at a page-aligned chunk boundary of a longer chunking, P past
// the window (tokens evicted before the snapshot), and P = L (a full hit: the copy runs no chunk
// and its forks sample from the snapshot's logits).
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "tests/testing/snapshot_scenario.h"
#include "tests/testing/thread_collectives.h"
#include "worker/cpu/model.h"
#include "worker/engine/engine.h"

namespace rami {
namespace {

using cpu::Model;
using engine::Engine;
using engine::SequenceReport;
using kv::CachePolicy;
using testing::SnapshotCut;
using testing::SnapshotTrace;

constexpr int kLength = 20;  // L: prompt tokens

struct Policy {
  std::string name;
  std::string model;
  bool window = false;  // window:4:8 instead of the checkpoint's own policy
};

struct Case {
  Policy policy;
  int world = 1;
  SnapshotCut cut;
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.policy.name << " tp" << c.world << " P=" << c.cut.p;
}

std::vector<int32_t> Prompt() {
  std::mt19937 rng(17);
  std::vector<int32_t> prompt;
  for (int i = 0; i < kLength; ++i) prompt.push_back(static_cast<int32_t>(rng() % 256));
  return prompt;
}

// One rank's Engine over `policy`'s checkpoint.
std::unique_ptr<Engine> MakeEngine(const Policy& policy, int rank, int world,
                                   std::unique_ptr<collectives::Collectives> comm) {
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Load(testing::GoldenModelDir(policy.model), {.rank = rank, .world_size = world});
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  const CachePolicy cache_policy =
      policy.window ? CachePolicy::Window(4, 8) : (*model)->shape().DefaultCachePolicy();
  absl::StatusOr<std::unique_ptr<kv::KvCache>> cache =
      (*model)->shape().MakeCache({.page_size = 4, .num_pages = 512}, cache_policy);
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return nullptr;
  return std::make_unique<Engine>(std::move(*model), std::move(*cache), std::move(comm));
}

std::vector<SnapshotTrace> RunRanks(const Case& c) {
  std::vector<SnapshotTrace> traces(c.world);
  if (c.world == 1) {
    std::unique_ptr<Engine> engine =
        MakeEngine(c.policy, 0, 1, std::make_unique<collectives::SingleRankCollectives>());
    if (engine != nullptr) traces[0] = testing::RunSnapshotScenario(*engine, c.cut, Prompt());
    return traces;
  }
  testing::ThreadGroup group(c.world);
  std::vector<std::thread> ranks;
  for (int r = 0; r < c.world; ++r) {
    ranks.emplace_back([&, r] {
      std::unique_ptr<Engine> engine = MakeEngine(
          c.policy, r, c.world, std::make_unique<testing::ThreadGroupCollectives>(&group, r));
      if (engine != nullptr) traces[r] = testing::RunSnapshotScenario(*engine, c.cut, Prompt());
    });
  }
  for (std::thread& t : ranks) t.join();
  return traces;
}

class EngineSnapshotTest : public ::testing::TestWithParam<Case> {};

TEST_P(EngineSnapshotTest, WarmRunEqualsColdRun) {
  const Case& c = GetParam();
  const std::vector<SnapshotTrace> ranks = RunRanks(c);
  for (int r = 0; r < c.world; ++r) {
    const SnapshotTrace& t = ranks[r];
    const std::string rank = "rank " + std::to_string(r);
    testing::ExpectWarmEqualsCold(t, c.cut, {.logprob = 0}, rank);
    // The evicting policies do evict here (the branches end with fewer live tokens than
    // logical ones), so the copies carry windows, kept lists and decisions.
    ASSERT_GE(t.cold.size(), 2u) << rank;
    ASSERT_FALSE(t.cold[t.cold.size() - 2].cache.sequences.empty()) << rank;
    const SequenceReport& branch = t.cold[t.cold.size() - 2].cache.sequences.back();
    if (c.policy.name != "dense") {
      EXPECT_LT(branch.stats.live_max, branch.stats.logical_tokens) << rank;
    }
  }
  // Every rank samples the same tokens.
  for (int r = 1; r < c.world; ++r) {
    ASSERT_EQ(ranks[r].warm[1].size(), ranks[0].warm[1].size());
    for (size_t i = 0; i < ranks[0].warm[1].size(); ++i) {
      ASSERT_EQ(ranks[r].warm[1][i].tokens.size(), ranks[0].warm[1][i].tokens.size());
      for (size_t t = 0; t < ranks[0].warm[1][i].tokens.size(); ++t) {
        EXPECT_EQ(ranks[r].warm[1][i].tokens[t].sample.token_id,
                  ranks[0].warm[1][i].tokens[t].sample.token_id);
      }
    }
  }
}

std::vector<Case> Cases() {
  const Policy policies[] = {{"dense", "qwen3", false},
                             {"window", "qwen3", true},
                             {"dms", "qwen3_dms", false},
                             {"dms_adapter", "qwen3_dms_adapter", false}};
  const SnapshotCut cuts[] = {{"MidPage", {0, 6, kLength}, 6},
                              {"WithinWindow", {0, 3, kLength}, 3},
                              {"ChunkBoundary", {0, 4, 8, 13, kLength}, 8},
                              {"PastWindow", {0, 5, 13, kLength}, 13},
                              {"FullHit", {0, 7, kLength}, kLength}};
  std::vector<Case> cases;
  for (const Policy& policy : policies) {
    for (int world : {1, 2}) {
      for (const SnapshotCut& cut : cuts) cases.push_back({policy, world, cut});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Policies, EngineSnapshotTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.policy.name + "_tp" +
                                  std::to_string(info.param.world) + "_" + info.param.cut.name;
                         });

}  // namespace
}  // namespace rami
