// WorkerGroup without processes: a load is refused when a rank runs another model; the ranks'
// reports merge conservatively; decisions become the plan every rank runs, with each new
// sequence's owner and sampling; cache reports become capacity and the jobs' KV — with the
// same compression ratio at any tensor-parallel degree.
#include "coordinator/groups/worker_group.h"
#include "base/host_port.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rami::coordinator {
namespace {

namespace wv1 = worker::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

wv1::LoadShardResponse Loaded(int64_t pages, int heads, int vocab = 256) {
  wv1::LoadShardResponse r;
  r.set_num_pages(pages);
  r.set_page_size(4);
  r.set_num_layers(2);
  r.set_num_kv_heads(heads);
  r.set_vocab_size(vocab);
  r.add_eos_token_ids(0);
  r.set_kv_cache_bytes(pages * 4 * 64);
  r.set_cache_policy("dms");
  r.set_dms_window(8);
  return r;
}

const ModelIdentity kModel{256, {0}};

TEST(WorkerGroup, RefusesARankThatLoadedAnotherModel) {
  WorkerGroup g(1, {"127.0.0.1:7001", "127.0.0.1:7002"});
  absl::Status s = g.OnLoaded({Loaded(100, 1), Loaded(100, 1, 512)}, kModel, {}, 5);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("rank 1 (127.0.0.1:7002)"));
  EXPECT_THAT(s.message(), HasSubstr("vocab_size 512"));
  EXPECT_THAT(s.message(), HasSubstr("vocab_size 256"));
  EXPECT_TRUE(PermanentLoadError(s));
  EXPECT_NE(g.state, GroupState::kServing);

  wv1::LoadShardResponse other_eos = Loaded(100, 1);
  other_eos.set_eos_token_ids(0, 7);
  s = g.OnLoaded({other_eos}, kModel, {}, 5);
  EXPECT_THAT(s.message(), HasSubstr("EOS ids [7]"));
  EXPECT_NE(g.state, GroupState::kServing);
}

TEST(WorkerGroup, TheTightestRankSetsTheCapacity) {
  WorkerGroup g(1, {"a:1", "b:2"});
  ASSERT_TRUE(g.OnLoaded({Loaded(100, 1), Loaded(90, 2)}, kModel, {}, 5).ok());
  EXPECT_EQ(g.state, GroupState::kServing);
  EXPECT_STREQ(g.state_name(), "serving");
  EXPECT_EQ(g.capacity().free_pages, 90);
  EXPECT_EQ(g.capacity().streams, 2 * 2);  // layers x the largest rank's heads
  EXPECT_TRUE(g.capacity().evicts);
  EXPECT_EQ(g.capacity().window, 8);
  EXPECT_EQ(g.lease_epoch, 5);
  EXPECT_EQ(g.cache_policy, "dms");
  ASSERT_NE(g.scheduler, nullptr);
}

StepDecision Decision() {
  StepDecision d;
  PlannedPrefill root;
  root.seq = 1;
  root.owner = {4, -1};
  root.tokens = {5, 6};
  root.create = true;
  root.sampling.seed = 40;
  d.prefills.push_back(root);
  PlannedFork fork{1, 4, {}};
  for (int i = 0; i < 2; ++i) {
    PlannedForkChild child{i, 2 + i, {}};
    child.sampling.seed = 40 + i;
    fork.children.push_back(child);
  }
  d.forks.push_back(fork);
  return d;
}

TEST(WorkerGroup, DecisionsBecomeThePlanAndRecordOwners) {
  WorkerGroup g(1, {"a:1"});
  ASSERT_TRUE(g.OnLoaded({Loaded(100, 1)}, kModel, {}, 5).ok());
  wv1::StepPlan plan = g.ToWorkerPlan(Decision());
  ASSERT_EQ(plan.prefills_size(), 1);
  EXPECT_TRUE(plan.prefills(0).create());
  EXPECT_THAT(plan.prefills(0).token_ids(), ElementsAre(5, 6));
  EXPECT_EQ(plan.prefills(0).sampling().seed(), 40u);
  ASSERT_EQ(plan.forks_size(), 1);
  ASSERT_EQ(plan.forks(0).children_size(), 2);
  EXPECT_EQ(plan.forks(0).children(1).seq_id(), 3);
  EXPECT_EQ(plan.forks(0).children(1).sampling().seed(), 41u);
  ASSERT_NE(g.Owner(3), nullptr);
  EXPECT_EQ(g.Owner(3)->job, 4);
  EXPECT_EQ(g.Owner(3)->branch, 1);
  EXPECT_EQ(g.Owner(1)->branch, -1);  // the root

  StepDecision next;
  next.frees = {3};
  next.decodes.push_back({2, {4, 0}});
  plan = g.ToWorkerPlan(next);
  EXPECT_THAT(plan.frees(), ElementsAre(3));
  EXPECT_THAT(plan.decodes(), ElementsAre(2));
  EXPECT_EQ(g.Owner(3), nullptr);  // freed: its late reports and tokens are ignored
}

wv1::StepResult Report(int64_t free, int64_t seq, int64_t logical, int64_t live_sum, int64_t need,
                       int64_t unshared) {
  wv1::StepResult r;
  r.mutable_cache()->set_free_pages(free);
  wv1::SequenceCache* s = r.mutable_cache()->add_sequences();
  s->set_seq_id(seq);
  s->set_logical_tokens(logical);
  s->set_live_tokens_sum(live_sum);
  s->add_decode_page_needs(need);
  s->add_decode_page_needs(need + 1);
  s->set_unshared_pages(unshared);
  return r;
}

TEST(WorkerGroup, CacheReportsMergeConservativelyAcrossRanks) {
  WorkerGroup g(1, {"a:1", "b:2"});
  ASSERT_TRUE(g.OnLoaded({Loaded(100, 1), Loaded(100, 1)}, kModel, {}, 5).ok());
  g.ToWorkerPlan(Decision());
  std::map<JobId, KvUsage> kv =
      g.ApplyCacheReports({Report(50, 2, 40, 30, 1, 9), Report(45, 2, 40, 34, 2, 7)});
  EXPECT_EQ(g.capacity().free_pages, 45);           // min
  EXPECT_EQ(g.capacity().decode_need.at(2), 2);     // max
  EXPECT_EQ(g.capacity().unshared_pages.at(2), 7);  // min
  ASSERT_EQ(kv.count(4), 1u);
  EXPECT_EQ(kv.at(4).live_tokens, 64);
  // Planning one step ahead: the pages in flight are taken, the needs two steps ahead count.
  g.in_flight.push_back({.reserved_pages = 5, .sent = absl::Now(), .tokens = 1});
  g.WithPlanningCapacity([](const Capacity& ahead) {
    EXPECT_EQ(ahead.free_pages, 40);
    EXPECT_EQ(ahead.decode_need.at(2), 3);
    return 0;
  });
  EXPECT_EQ(g.capacity().free_pages, 45);  // lent, then restored
  EXPECT_EQ(g.capacity().decode_need.at(2), 2);
}

TEST(WorkerGroup, CompressionIsTheSameAtAnyTensorParallelDegree) {
  // One sequence of 40 tokens over 2 layers x 2 KV heads, 25% of them live. TP 1: one rank
  // holds the 4 streams; TP 2: two ranks hold 2 streams each.
  WorkerGroup tp1(1, {"a:1"});
  ASSERT_TRUE(tp1.OnLoaded({Loaded(100, 2)}, kModel, {}, 5).ok());
  tp1.ToWorkerPlan(Decision());
  const KvUsage one = tp1.ApplyCacheReports({Report(50, 2, 40, 40, 1, 1)}).at(4);
  WorkerGroup tp2(2, {"a:1", "b:2"});
  ASSERT_TRUE(tp2.OnLoaded({Loaded(100, 1), Loaded(100, 1)}, kModel, {}, 5).ok());
  tp2.ToWorkerPlan(Decision());
  const KvUsage two =
      tp2.ApplyCacheReports({Report(50, 2, 40, 20, 1, 1), Report(50, 2, 40, 20, 1, 1)}).at(4);
  EXPECT_EQ(one.logical_tokens, 160);
  EXPECT_EQ(two.logical_tokens, 160);
  EXPECT_EQ(one.live_tokens, two.live_tokens);
}

// A rank's Gloo listeners bind to the host the coordinator dials it on (the group's interface).
TEST(WorkerGroup, CollectivesBindWhereTheRankIsReached) {
  EXPECT_EQ(HostOf("10.0.3.7:50061"), "10.0.3.7");
  EXPECT_EQ(HostOf("rami-worker-1.rami-worker.ns.svc.cluster.local:50062"),
            "rami-worker-1.rami-worker.ns.svc.cluster.local");
  EXPECT_EQ(HostOf("[fd00::5]:50061"), "fd00::5");
  EXPECT_EQ(HostOf("127.0.0.1:0"), "127.0.0.1");
}

TEST(WorkerGroup, ALostGroupForgetsItsSequences) {
  WorkerGroup g(1, {"a:1"});
  ASSERT_TRUE(g.OnLoaded({Loaded(100, 1)}, kModel, {}, 5).ok());
  g.ToWorkerPlan(Decision());
  g.in_flight.push_back({});
  g.OnLost(absl::UnavailableError("rank 0: step stream closed"));
  EXPECT_EQ(g.state, GroupState::kFailed);
  EXPECT_EQ(g.Owner(2), nullptr);
  EXPECT_TRUE(g.in_flight.empty());
  g.leaving = true;
  EXPECT_STREQ(g.state_name(), "leaving");
  g.OnLost(absl::UnavailableError("left"));
  EXPECT_EQ(g.state, GroupState::kGone);
}

TEST(WorkerGroup, StepDeadlinesFollowTheMeasuredRate) {
  WorkerGroup g(1, {"a:1"});
  ASSERT_TRUE(g.OnLoaded({Loaded(100, 1)}, kModel, {}, 5).ok());
  const StepDeadlines d{
      .floor = absl::Seconds(2), .factor = 10, .first_steps = absl::Seconds(60), .warmup_steps = 2};
  EXPECT_EQ(g.StepDeadline(d), absl::InfiniteFuture());  // nothing in flight
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  const WorkerGroup::InFlight step{.reserved_pages = 0, .sent = t0, .tokens = 10};
  g.in_flight.push_back(step);
  EXPECT_EQ(g.StepDeadline(d), t0 + absl::Seconds(60));  // the first steps' own budget
  g.RecordStepTime(step, absl::Milliseconds(100));       // 10 ms per token
  g.RecordStepTime(step, absl::Milliseconds(50));        // faster: the slow rate still counts most
  // floor + factor × rate × tokens = 2 s + 10 × 0.0095 s × 10
  EXPECT_NEAR(absl::ToDoubleSeconds(g.StepDeadline(d) - t0), 2 + 10 * 0.0095 * 10, 1e-6);
  g.RecordStepTime(step, absl::Seconds(1));  // 100 ms per token: the deadline grows at once
  EXPECT_NEAR(absl::ToDoubleSeconds(g.StepDeadline(d) - t0), 2 + 10 * 0.1 * 10, 1e-6);
  // A reload (same ranks, same hardware) keeps the measured rate: no second warm-up budget.
  ASSERT_TRUE(g.OnLoaded({Loaded(100, 1)}, kModel, {}, 6).ok());
  g.in_flight.push_back(step);
  EXPECT_NEAR(absl::ToDoubleSeconds(g.StepDeadline(d) - t0), 2 + 10 * 0.1 * 10, 1e-6);
}

}  // namespace
}  // namespace rami::coordinator
