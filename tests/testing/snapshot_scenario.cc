// The prefix-cache scenario's plans and comparisons; see snapshot_scenario.h.
#include "tests/testing/snapshot_scenario.h"

#include "gtest/gtest.h"
#include "tests/testing/sequence_stats.h"

namespace rami::testing {

using engine::PlanPrefill;
using engine::SequenceReport;
using engine::StepOutcome;
using engine::StepPlan;
using kv::SeqId;

namespace {

constexpr SeqId kColdRoot = 10;
constexpr int kDecodes = 12;

const SamplingParams kRoot{.logprobs = 2};
const SamplingParams kBranches[3] = {
    {.logprobs = 2},
    {.temperature = 0.9f, .top_k = 40, .seed = 5, .logprobs = 2},
    {.temperature = 1.2f, .top_p = 0.9f, .seed = 9, .logprobs = 1}};

// One run of the prompt: root `root` (cold when kColdRoot, else a copy of the snapshot) and
// branches root + 1 … root + 3. `snapshot`: take it when a chunk ends at P; `free_snapshot`:
// free it in the first decode step.
std::vector<StepPlan> Plans(const SnapshotCut& cut, const std::vector<int32_t>& prompt, SeqId root,
                            bool snapshot, bool free_snapshot, uint64_t* step) {
  const bool warm = root != kColdRoot;
  const int length = static_cast<int>(prompt.size());
  std::vector<StepPlan> plans;
  for (size_t c = 0; c + 1 < cut.bounds.size(); ++c) {
    const int begin = cut.bounds[c], end = cut.bounds[c + 1];
    // Cached: the chunks up to P, but the last one when it ends at P (a full hit forks there).
    if (warm && (end < cut.p || (end == cut.p && cut.p != length))) continue;
    StepPlan plan;
    plan.step_id = (*step)++;
    PlanPrefill p;
    p.seq_id = root;
    p.create = warm ? plans.empty() : c == 0;
    if (p.create) p.sampling = kRoot;
    if (warm && plans.empty()) p.copy_of = kSnapshotSeq;
    if (!(warm && end == cut.p)) p.tokens.assign(prompt.begin() + begin, prompt.begin() + end);
    p.prompt_logprobs = !p.tokens.empty() && begin >= cut.p;  // the chunks a warm run runs too
    plan.prefills.push_back(std::move(p));
    if (snapshot && end == cut.p) {
      plan.snapshots.push_back({.source = root, .seq_id = kSnapshotSeq});
    }
    if (end == length) {
      engine::PlanFork fork{.parent = root, .children = {}};
      for (int i = 0; i < 3; ++i) fork.children.push_back({root + 1 + i, kBranches[i]});
      plan.forks.push_back(std::move(fork));
    }
    plans.push_back(std::move(plan));
  }
  for (int d = 0; d < kDecodes; ++d) {
    StepPlan plan;
    plan.step_id = (*step)++;
    plan.decodes = {root + 1, root + 2, root + 3};
    if (free_snapshot && d == 0) plan.frees = {kSnapshotSeq};
    plans.push_back(std::move(plan));
  }
  StepPlan free;
  free.step_id = (*step)++;
  free.frees = {root, root + 1, root + 2, root + 3};
  plans.push_back(std::move(free));
  return plans;
}

void ExpectNear(double got, double want, double tolerance, const std::string& where) {
  if (tolerance == 0) {
    EXPECT_EQ(got, want) << where;
  } else {
    EXPECT_NEAR(got, want, tolerance) << where;
  }
}

// Warm step i against cold step `offset` + i; sequence root + k against kColdRoot + k.
void ExpectRunEqualsCold(const std::vector<StepOutcome>& cold, const std::vector<StepOutcome>& warm,
                         size_t offset, SeqId root, const SnapshotTolerance& tol,
                         const std::string& run) {
  ASSERT_EQ(cold.size(), offset + warm.size()) << run;
  for (size_t i = 0; i < warm.size(); ++i) {
    const StepOutcome& w = warm[i];
    const StepOutcome& c = cold[offset + i];
    const std::string where = run + " warm step " + std::to_string(i);
    ASSERT_EQ(w.tokens.size(), c.tokens.size()) << where;
    for (size_t t = 0; t < w.tokens.size(); ++t) {
      EXPECT_EQ(w.tokens[t].seq_id - root, c.tokens[t].seq_id - kColdRoot) << where;
      EXPECT_EQ(w.tokens[t].index, c.tokens[t].index) << where;
      EXPECT_EQ(w.tokens[t].sample.token_id, c.tokens[t].sample.token_id) << where;
      ExpectNear(w.tokens[t].sample.logprob, c.tokens[t].sample.logprob, tol.logprob, where);
      ASSERT_EQ(w.tokens[t].sample.top.size(), c.tokens[t].sample.top.size()) << where;
      for (size_t j = 0; j < w.tokens[t].sample.top.size(); ++j) {
        EXPECT_EQ(w.tokens[t].sample.top[j].token_id, c.tokens[t].sample.top[j].token_id) << where;
        ExpectNear(w.tokens[t].sample.top[j].logprob, c.tokens[t].sample.top[j].logprob,
                   tol.logprob, where);
      }
    }
    ASSERT_EQ(w.prompt_logprobs.size(), c.prompt_logprobs.size()) << where;
    for (size_t p = 0; p < w.prompt_logprobs.size(); ++p) {
      const auto& wp = w.prompt_logprobs[p].tokens;
      const auto& cp = c.prompt_logprobs[p].tokens;
      ASSERT_EQ(wp.size(), cp.size()) << where;
      for (size_t t = 0; t < wp.size(); ++t) {
        EXPECT_EQ(wp[t].position, cp[t].position) << where;
        EXPECT_EQ(wp[t].score.token_id, cp[t].score.token_id) << where;
        ExpectNear(wp[t].score.logprob, cp[t].score.logprob, tol.logprob, where);
      }
    }
    // Every reported root and branch as in the cold run (not the snapshot, not the frees).
    int compared = 0;
    for (const SequenceReport& ws : w.cache.sequences) {
      if (ws.seq_id < root || ws.seq_id > root + 3) continue;
      const SequenceReport* cs = nullptr;
      for (const SequenceReport& r : c.cache.sequences) {
        if (r.seq_id == ws.seq_id - root + kColdRoot) cs = &r;
      }
      ASSERT_NE(cs, nullptr) << where << " sequence " << ws.seq_id;
      const std::string seq = where + " sequence " + std::to_string(ws.seq_id);
      ExpectSameStats(ws.stats, cs->stats, seq);
      EXPECT_EQ(ws.decode_page_needs, cs->decode_page_needs) << seq;
      ++compared;
    }
    if (i + 1 < warm.size()) {  // all but the final frees
      EXPECT_GT(compared, 0) << where;
    }
  }
}

}  // namespace

SnapshotTrace RunSnapshotScenario(engine::Engine& engine, const SnapshotCut& cut,
                                  const std::vector<int32_t>& prompt) {
  SnapshotTrace trace;
  trace.free_at_start = engine.cache().pool().free_pages();
  uint64_t step = 0;
  const auto execute = [&](const std::vector<StepPlan>& plans, std::vector<StepOutcome>* outs) {
    for (const StepPlan& plan : plans) {
      outs->push_back(engine.Execute(plan));
      EXPECT_TRUE(outs->back().status.ok())
          << "step " << plan.step_id << ": " << outs->back().status;
      EXPECT_TRUE(outs->back().sequence_errors.empty()) << "step " << plan.step_id;
    }
  };
  execute(Plans(cut, prompt, kColdRoot, /*snapshot=*/true, false, &step), &trace.cold);
  trace.snapshot_before = engine.cache().SequenceStatsOf(kSnapshotSeq);
  execute(Plans(cut, prompt, 20, false, false, &step), &trace.warm[0]);
  trace.snapshot_after = engine.cache().SequenceStatsOf(kSnapshotSeq);
  execute(Plans(cut, prompt, 30, false, /*free_snapshot=*/true, &step), &trace.warm[1]);
  trace.free_at_end = engine.cache().pool().free_pages();
  return trace;
}

void ExpectWarmEqualsCold(const SnapshotTrace& trace, const SnapshotCut& cut,
                          const SnapshotTolerance& tolerance, const std::string& where) {
  // The cold step of the chunk that starts at P (P = L: of the last chunk, which forks).
  const std::vector<int>& bounds = cut.bounds;
  size_t offset = 0;
  while (offset + 1 < bounds.size() && bounds[offset] < cut.p) ++offset;
  if (cut.p == bounds.back()) offset = bounds.size() - 2;
  ExpectRunEqualsCold(trace.cold, trace.warm[0], offset, 20, tolerance, where + " copy 1");
  ExpectRunEqualsCold(trace.cold, trace.warm[1], offset, 30, tolerance, where + " copy 2");
  ExpectSameStats(trace.snapshot_after, trace.snapshot_before, where + " snapshot after a copy");
  EXPECT_EQ(trace.snapshot_before.logical_tokens, cut.p) << where;
  EXPECT_EQ(trace.free_at_end, trace.free_at_start) << where << ": every page back in the pool";
}

}  // namespace rami::testing
