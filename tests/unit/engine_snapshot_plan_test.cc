// Plans with copies and snapshots that the Engine must refuse, and copies that do not fit: each
// malformed plan is INVALID_ARGUMENT naming the problem, a copy short of pages fails its step
// (RESOURCE_EXHAUSTED) — and in every case no sequence changes (copies removed, snapshots not
// taken, the pool as before) and the Engine goes on serving. Plus what a copy inherits: a copy
// without tokens samples from the snapshot's logits, a copy's first token is scored from them.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "worker/cpu/model.h"
#include "worker/engine/engine.h"

namespace rami {
namespace {

using cpu::Model;
using engine::Engine;
using engine::PlanPrefill;
using engine::StepOutcome;
using engine::StepPlan;
using kv::CachePolicy;
using kv::SeqId;
using ::testing::HasSubstr;

const SamplingParams kGreedy{.logprobs = 1};
constexpr SeqId kSnapshotId = 100;

std::unique_ptr<Engine> MakeEngine(const std::string& name, const CachePolicy* policy,
                                   int num_pages) {
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(testing::GoldenModelDir(name), {});
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<kv::KvCache>> cache = (*model)->shape().MakeCache(
      {.page_size = 4, .num_pages = num_pages},
      policy != nullptr ? *policy : (*model)->shape().DefaultCachePolicy());
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return nullptr;
  return std::make_unique<Engine>(std::move(*model), std::move(*cache),
                                  std::make_unique<collectives::SingleRankCollectives>());
}

PlanPrefill Create(SeqId id, std::vector<int32_t> tokens, bool sample = false) {
  PlanPrefill p;
  p.seq_id = id;
  p.tokens = std::move(tokens);
  p.create = true;
  p.sample = sample;
  p.sampling = kGreedy;
  return p;
}

PlanPrefill CopyOf(SeqId id, SeqId source, std::vector<int32_t> tokens, bool sample = false) {
  PlanPrefill p = Create(id, std::move(tokens), sample);
  p.copy_of = source;
  return p;
}

// What a failed step must leave as it was.
struct CacheState {
  int sequences = 0;
  int free_pages = 0;
  int64_t logical_tokens = 0;
  bool operator==(const CacheState&) const = default;
};
StepPlan Plan(uint64_t step) {
  StepPlan plan;
  plan.step_id = step;
  return plan;
}

CacheState StateOf(const Engine& engine) {
  const kv::CacheStats s = engine.cache().Stats();
  return {s.num_sequences, s.free_pages, s.logical_tokens};
}

// Sequence 1 prefilled (6 tokens) with snapshot 100 of it; sequence 2 sampled and decoded once
// (its logits are no longer those of its length).
void Prepare(Engine& engine) {
  StepPlan plan = Plan(0);
  plan.prefills = {Create(1, {5, 17, 99, 3, 42, 7}), Create(2, {8, 1, 2}, /*sample=*/true)};
  plan.snapshots = {{.source = 1, .seq_id = kSnapshotId}};
  ASSERT_TRUE(engine.Execute(plan).status.ok());
  plan = Plan(1);
  plan.decodes = {2};
  ASSERT_TRUE(engine.Execute(plan).status.ok());
}

TEST(EngineSnapshotPlan, MalformedPlansAreRefusedAndChangeNothing) {
  std::unique_ptr<Engine> engine = MakeEngine("qwen3_dms", nullptr, 256);
  ASSERT_NE(engine, nullptr);
  Prepare(*engine);
  struct Bad {
    std::string what;
    StepPlan plan;
    std::string message;
  };
  std::vector<Bad> bad;
  const auto add = [&](std::string what, std::string message, auto edit) {
    StepPlan plan = Plan(7);
    edit(plan);
    bad.push_back({std::move(what), std::move(plan), std::move(message)});
  };
  add("copy_of unknown", "prefills: sequence 5: copy_of unknown sequence 999", [](StepPlan& p) {
    p.prefills = {CopyOf(5, 999, {1, 2})};
  });
  add("copy_of without create", "prefills: sequence 1: copy_of 100 without create",
      [](StepPlan& p) {
        p.prefills = {Create(1, {4})};
        p.prefills[0].create = false;
        p.prefills[0].copy_of = kSnapshotId;
      });
  add("no tokens without copy_of", "prefills: sequence 5: no tokens (only a copy_of may have none)",
      [](StepPlan& p) { p.prefills = {Create(5, {})}; });
  add("copy_of freed in the plan", "prefills: sequence 5: copy_of 100, which this plan frees",
      [](StepPlan& p) {
        p.frees = {kSnapshotId};
        p.prefills = {CopyOf(5, kSnapshotId, {1})};
      });
  add("copy_of a decoding sequence", "copy_of 2, which also appears elsewhere in the plan",
      [](StepPlan& p) {
        p.decodes = {2};
        p.prefills = {CopyOf(5, 2, {1})};
      });
  add("copy_of a forked parent", "copy_of 100, which also appears elsewhere in the plan",
      [](StepPlan& p) {
        p.prefills = {CopyOf(5, kSnapshotId, {1})};
        p.forks = {{.parent = kSnapshotId, .children = {{6, kGreedy}}}};
      });
  add("sample without tokens from stale logits",
      "prefills: sequence 5: sample without tokens, and copy_of 2 holds no prefill logits",
      [](StepPlan& p) { p.prefills = {CopyOf(5, 2, {}, /*sample=*/true)}; });
  add("fork of a copy without logits", "forks: parent 5 is missing or has no prefill logits",
      [](StepPlan& p) {
        p.prefills = {CopyOf(5, 2, {})};
        p.forks = {{.parent = 5, .children = {{6, kGreedy}}}};
      });
  add("snapshot of a decoding sequence", "snapshots: source 2 of snapshot 101 decodes in this step",
      [](StepPlan& p) {
        p.decodes = {2};
        p.snapshots = {{.source = 2, .seq_id = 101}};
      });
  add("snapshot of a freed sequence", "snapshots: source 1 of snapshot 101 is freed in this plan",
      [](StepPlan& p) {
        p.frees = {1};
        p.snapshots = {{.source = 1, .seq_id = 101}};
      });
  add("snapshot with stale logits",
      "snapshots: source 2 of snapshot 101 is missing or holds no prefill logits",
      [](StepPlan& p) { p.snapshots = {{.source = 2, .seq_id = 101}}; });
  add("snapshot of an unknown sequence",
      "snapshots: source 55 of snapshot 101 is missing or holds no prefill logits",
      [](StepPlan& p) { p.snapshots = {{.source = 55, .seq_id = 101}}; });
  add("duplicate snapshot id", "snapshots: sequence 101 appears twice in the plan",
      [](StepPlan& p) {
        p.snapshots = {{.source = 1, .seq_id = 101}, {.source = kSnapshotId, .seq_id = 101}};
      });
  add("snapshot id exists", "snapshots: sequence 2 already exists",
      [](StepPlan& p) { p.snapshots = {{.source = 1, .seq_id = 2}}; });
  add("snapshot id a new copy", "snapshots: sequence 5 appears twice in the plan", [](StepPlan& p) {
    p.prefills = {CopyOf(5, kSnapshotId, {1})};
    p.snapshots = {{.source = 1, .seq_id = 5}};
  });

  for (const Bad& b : bad) {
    const CacheState before = StateOf(*engine);
    const StepOutcome out = engine->Execute(b.plan);
    EXPECT_EQ(out.status.code(), absl::StatusCode::kInvalidArgument)
        << b.what << ": " << out.status;
    EXPECT_THAT(std::string(out.status.message()), HasSubstr(b.message)) << b.what;
    EXPECT_TRUE(before == StateOf(*engine)) << b.what << ": the cache changed";
    // The Engine goes on serving.
    StepPlan decode = Plan(8);
    decode.decodes = {2};
    const StepOutcome next = engine->Execute(decode);
    EXPECT_TRUE(next.status.ok()) << b.what << ": " << next.status;
    EXPECT_EQ(next.tokens.size(), 1u) << b.what;
  }
}

// A copy short of pages, a copy followed by a reservation or snapshots short of pages: the step
// fails, the copies are gone and the pool is as before; with pages again, the copy works.
TEST(EngineSnapshotPlan, CopiesShortOfPagesFailTheStepAndChangeNothing) {
  const CachePolicy dense = CachePolicy::Dense();
  std::unique_ptr<Engine> engine = MakeEngine("qwen3", &dense, 40);
  ASSERT_NE(engine, nullptr);
  Prepare(*engine);
  // A filler sequence takes pages until the snapshot's tail copies (6 tokens: a partial page
  // per stream) no longer fit.
  StepPlan plan = Plan(2);
  plan.prefills = {Create(9, {1, 2, 3, 4})};
  ASSERT_TRUE(engine->Execute(plan).status.ok());
  plan.prefills[0].create = false;
  plan.prefills[0].sampling.reset();
  while (engine->cache().pool().free_pages() >= engine->cache().ForkPageBound(kSnapshotId)) {
    ASSERT_TRUE(engine->Execute(plan).status.ok());
  }
  CacheState before = StateOf(*engine);
  plan = Plan(3);
  plan.prefills = {CopyOf(5, kSnapshotId, {11})};
  StepOutcome out = engine->Execute(plan);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kResourceExhausted) << out.status;
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("copy of sequence 100 as 5"));
  EXPECT_TRUE(before == StateOf(*engine));
  EXPECT_FALSE(engine->cache().Contains(5));

  plan = Plan(4);  // the frees of the filler apply; then the copy fits
  plan.frees = {9};
  ASSERT_TRUE(engine->Execute(plan).status.ok());
  before = StateOf(*engine);
  // The copy fits, the chunk beside it does not.
  plan = Plan(5);
  plan.prefills = {CopyOf(5, kSnapshotId, {11}), Create(6, std::vector<int32_t>(400, 3))};
  out = engine->Execute(plan);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kResourceExhausted) << out.status;
  EXPECT_TRUE(before == StateOf(*engine));
  EXPECT_FALSE(engine->cache().Contains(5));
  // The copy and its chunk fit, snapshots of the chunk do not.
  plan = Plan(6);
  plan.prefills = {CopyOf(5, kSnapshotId, {11})};
  for (SeqId id = 101; id < 140; ++id) plan.snapshots.push_back({.source = 5, .seq_id = id});
  out = engine->Execute(plan);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kResourceExhausted) << out.status;
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("forks and snapshots may need"));
  EXPECT_TRUE(before == StateOf(*engine));
  EXPECT_FALSE(engine->cache().Contains(101));

  plan = Plan(7);
  plan.prefills = {CopyOf(5, kSnapshotId, {11}, /*sample=*/true)};
  plan.snapshots = {{.source = 5, .seq_id = 101}};
  out = engine->Execute(plan);
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_EQ(out.tokens.size(), 1u);
  EXPECT_EQ(engine->cache().Length(5), 7);
  EXPECT_EQ(engine->cache().Length(101), 7);
  EXPECT_EQ(engine->cache().Length(kSnapshotId), 6);
}

// A copy without tokens samples from the snapshot's logits: the same token as a fork of the
// snapshotted root; a copy with tokens scores its first token from them.
TEST(EngineSnapshotPlan, CopyWithoutTokensSamplesTheSnapshotsLogits) {
  std::unique_ptr<Engine> engine = MakeEngine("qwen3_dms_adapter", nullptr, 256);
  ASSERT_NE(engine, nullptr);
  Prepare(*engine);
  StepPlan plan = Plan(2);
  plan.prefills = {CopyOf(5, kSnapshotId, {}, /*sample=*/true)};
  plan.forks = {{.parent = 1, .children = {{6, kGreedy}}}};
  StepOutcome out = engine->Execute(plan);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.tokens.size(), 2u);
  EXPECT_EQ(out.tokens[0].seq_id, 5);
  EXPECT_EQ(out.tokens[0].index, 0);
  EXPECT_EQ(out.tokens[0].sample.token_id, out.tokens[1].sample.token_id);
  EXPECT_EQ(out.tokens[0].sample.logprob, out.tokens[1].sample.logprob);
  // Both decode the same next token: the copy holds the root's cache.
  plan = Plan(3);
  plan.decodes = {5, 6};
  out = engine->Execute(plan);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.tokens.size(), 2u);
  EXPECT_EQ(out.tokens[0].sample.token_id, out.tokens[1].sample.token_id);
  EXPECT_EQ(out.tokens[0].sample.logprob, out.tokens[1].sample.logprob);

  plan = Plan(4);
  plan.prefills = {CopyOf(7, kSnapshotId, {9, 10})};
  plan.prefills[0].prompt_logprobs = true;
  out = engine->Execute(plan);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.prompt_logprobs.size(), 1u);
  ASSERT_EQ(out.prompt_logprobs[0].tokens.size(), 2u);
  EXPECT_EQ(out.prompt_logprobs[0].tokens[0].position, 6);  // from the snapshot's logits
}

}  // namespace
}  // namespace rami
