// The prefix cache's index (longest exact prefix, scopes, LRU) and the scheduler's use of it:
// chunks cut at snapshot points, snapshots and kept roots made, new roots copied from the
// longest entry (a full hit forks at once), the cap and memory pressure freeing entries.
#include "coordinator/scheduler/prefix_cache.h"

#include <algorithm>
#include <numeric>

#include "coordinator/scheduler/scheduler.h"
#include "gtest/gtest.h"

namespace rami::coordinator {
namespace {

constexpr uint64_t kNow = 10;  // a step after every insert below

std::vector<int32_t> Range(int32_t first, int count) {
  std::vector<int32_t> v(count);
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(PrefixCache, FindsTheLongestExactPrefixOfItsScopeOnly) {
  PrefixCache cache;
  const std::vector<int32_t> system = Range(1, 8);
  const std::vector<int32_t> longer = Concat(system, Range(100, 5));
  cache.Insert("a", system, 11, 1, 3, 1);
  cache.Insert("a", longer, 12, 1, 4, 1);
  cache.Insert("b", Concat(system, Range(100, 6)), 13, 1, 5, 1);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.pages(), 12);
  EXPECT_EQ(cache.cached_tokens(), 8 + 13 + 14);  // before entry 14 below

  // The longest entry that is a prefix; a whole-prompt entry counts.
  EXPECT_EQ(cache.Longest("a", Concat(longer, Range(7, 3)), kNow)->seq, 12);
  EXPECT_EQ(cache.Longest("a", longer, kNow)->seq, 12);
  // Diverging inside the longer entry: only the shorter one is a prefix.
  std::vector<int32_t> diverged = longer;
  diverged[10] = 999;
  EXPECT_EQ(cache.Longest("a", diverged, kNow)->seq, 11);
  // Shorter than every entry, another scope, or a different first token: nothing.
  EXPECT_EQ(cache.Longest("a", Range(1, 7), kNow), nullptr);
  EXPECT_EQ(cache.Longest("c", longer, kNow), nullptr);
  EXPECT_EQ(cache.Longest("a", Range(2, 20), kNow), nullptr);
  // Scope b's entry is longer than a's and matches the tokens, but is not a's.
  EXPECT_EQ(cache.Longest("b", Concat(system, Range(100, 9)), kNow)->seq, 13);

  // An entry is not found before the step it becomes usable in (a snapshot exists only after
  // its step's forward pass).
  cache.Insert("a", Concat(longer, Range(7, 3)), 14, kNow, 6, kNow + 1);
  EXPECT_EQ(cache.Longest("a", Concat(longer, Range(7, 3)), kNow)->seq, 12);
  EXPECT_EQ(cache.Longest("a", Concat(longer, Range(7, 3)), kNow + 1)->seq, 14);

  EXPECT_EQ(cache.Find("a", system)->seq, 11);
  EXPECT_EQ(cache.Find("b", system), nullptr);
  EXPECT_EQ(cache.Find("a", Range(1, 9)), nullptr);
}

TEST(PrefixCache, EvictsLeastRecentlyUsedAndSparesThisStepsEntries) {
  PrefixCache cache;
  cache.Insert("s", Range(1, 4), 1, /*step=*/1, 10, 1);
  cache.Insert("s", Range(1, 5), 2, /*step=*/2, 20, 1);
  cache.Insert("s", Range(1, 6), 3, /*step=*/3, 30, 1);
  cache.Touch(1, 4);  // now the most recent
  EXPECT_EQ(cache.EvictLru(/*protect=*/4).seq, 2);
  EXPECT_EQ(cache.EvictLru(4).seq, 3);
  EXPECT_EQ(cache.EvictLru(4).seq, -1);  // entry 1 was used in step 4
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.pages(), 10);
  EXPECT_EQ(cache.cached_tokens(), 4);
  // Gone from the index too: its prefix is no longer found.
  EXPECT_EQ(cache.Longest("s", Range(1, 6), kNow)->seq, 1);
  EXPECT_EQ(cache.EvictLru(5).seq, 1);
  EXPECT_TRUE(cache.empty());
  EXPECT_EQ(cache.Longest("s", Range(1, 6), kNow), nullptr);
}

Job MakeJob(JobId id, std::vector<int32_t> prompt, int n, std::vector<int64_t> points = {}) {
  Job job;
  job.id = id;
  job.arrival = id;
  job.prompt = std::move(prompt);
  job.max_tokens = 8;
  job.prefix_cache = true;
  job.prefix_scope = "key";
  job.snapshot_points = std::move(points);
  for (int i = 0; i < n; ++i) {
    Branch b;
    b.index = i;
    b.sampling.seed = 100 + i;
    job.branches.push_back(b);
  }
  return job;
}

Capacity Pages(int64_t free, int64_t total = 10000) {
  Capacity c;
  c.num_pages = total;
  c.free_pages = free;
  c.page_size = 4;
  c.streams = 2;
  return c;
}

// Ends a job as the runner does: branches finished, the root to be freed (or kept).
void Finish(Job& job) {
  for (Branch& b : job.branches) b.Finish();
  job.root_free_pending = true;
  job.phase = JobPhase::kFinished;
}

// Plans until the job's branches run; returns every decision.
std::vector<StepDecision> RunPrompt(Scheduler& s, Job& job, const Capacity& cap) {
  std::vector<Job*> jobs = {&job};
  std::vector<StepDecision> out;
  while (job.phase != JobPhase::kRunning && out.size() < 20) out.push_back(s.Plan(jobs, cap));
  return out;
}

// Runs a one-branch job of `prompt` to its end and plans the step that keeps its root: the
// cache then holds an entry of `prompt`, whose sequence this returns.
SeqId CacheAFinishedJob(Scheduler& s, JobId id, std::vector<int32_t> prompt) {
  Job job = MakeJob(id, std::move(prompt), 1);
  RunPrompt(s, job, Pages(1000));
  Finish(job);
  std::vector<Job*> ending = {&job};
  s.Plan(ending, Pages(1000));
  return s.prefix_cache().Find("key", job.prompt)->seq;
}

TEST(SchedulerPrefixCache, CutsAChunkAtASnapshotPointAndKeepsTheRootAtTheEnd) {
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 16});
  const std::vector<int32_t> system = Range(1, 10);
  Job a = MakeJob(1, Concat(system, Range(50, 7)), 2, /*points=*/{10});
  const std::vector<StepDecision> steps = RunPrompt(s, a, Pages(1000));
  ASSERT_EQ(steps.size(), 2u);
  // Step 1: tokens [0, 10) (cut from 16 at the point), then a snapshot of the root.
  ASSERT_EQ(steps[0].prefills.size(), 1u);
  EXPECT_TRUE(steps[0].prefills[0].create);
  EXPECT_EQ(steps[0].prefills[0].copy_of, -1);
  EXPECT_EQ(steps[0].prefills[0].tokens, system);
  ASSERT_EQ(steps[0].snapshots.size(), 1u);
  EXPECT_EQ(steps[0].snapshots[0].source, a.root);
  EXPECT_EQ(steps[0].cached, std::vector<SeqId>{steps[0].snapshots[0].seq});
  EXPECT_EQ(steps[0].prefix.misses, 1);
  EXPECT_EQ(steps[0].prefix.inserted, 1);
  // Step 2: the rest, and the forks.
  EXPECT_EQ(steps[1].prefills[0].tokens, Range(50, 7));
  EXPECT_TRUE(steps[1].snapshots.empty());
  EXPECT_EQ(steps[1].forks.size(), 1u);
  EXPECT_EQ(s.prefix_cache().size(), 1u);

  // The job ends: its root becomes the entry of its whole prompt instead of being freed.
  const SeqId root = a.root;
  Finish(a);
  std::vector<Job*> jobs = {&a};
  const StepDecision end = s.Plan(jobs, Pages(1000));
  EXPECT_EQ(std::count(end.frees.begin(), end.frees.end(), root), 0);
  EXPECT_EQ(end.cached, std::vector<SeqId>{root});
  EXPECT_EQ(a.root, -1);  // the job holds it no more
  ASSERT_NE(s.prefix_cache().Find("key", a.prompt), nullptr);
  EXPECT_EQ(s.prefix_cache().Find("key", a.prompt)->seq, root);
  EXPECT_EQ(s.prefix_cache().size(), 2u);
}

TEST(SchedulerPrefixCache, ANewRootCopiesTheLongestEntryAndAFullHitForksAtOnce) {
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 16});
  const std::vector<int32_t> system = Range(1, 10);
  Job a = MakeJob(1, Concat(system, Range(50, 7)), 2, {10});
  RunPrompt(s, a, Pages(1000));
  const SeqId snapshot = s.prefix_cache().Find("key", system)->seq;
  Finish(a);
  std::vector<Job*> ending = {&a};
  s.Plan(ending, Pages(1000));

  // Another question after the same system prompt: copied from the snapshot, rest prefilled.
  Job b = MakeJob(2, Concat(system, Range(70, 5)), 3, {10});
  const std::vector<StepDecision> bsteps = RunPrompt(s, b, Pages(1000));
  ASSERT_EQ(bsteps.size(), 1u);
  ASSERT_EQ(bsteps[0].prefills.size(), 1u);
  EXPECT_TRUE(bsteps[0].prefills[0].create);
  EXPECT_EQ(bsteps[0].prefills[0].copy_of, snapshot);
  EXPECT_EQ(bsteps[0].prefills[0].tokens, Range(70, 5));
  EXPECT_TRUE(bsteps[0].snapshots.empty());  // its point is cached already
  EXPECT_EQ(bsteps[0].prefix.hits, 1);
  EXPECT_EQ(bsteps[0].prefix.cached_tokens, 10);
  EXPECT_EQ(b.cached_tokens, 10);
  EXPECT_EQ(bsteps[0].forks.size(), 1u);

  // The same prompt as a: a full hit — an empty chunk copies a's kept root, and the branches
  // fork from it in the same step.
  Job c = MakeJob(3, a.prompt, 4, {10});
  const std::vector<StepDecision> csteps = RunPrompt(s, c, Pages(1000));
  ASSERT_EQ(csteps.size(), 1u);
  ASSERT_EQ(csteps[0].prefills.size(), 1u);
  EXPECT_TRUE(csteps[0].prefills[0].tokens.empty());
  EXPECT_EQ(csteps[0].prefills[0].copy_of, s.prefix_cache().Find("key", a.prompt)->seq);
  ASSERT_EQ(csteps[0].forks.size(), 1u);
  EXPECT_EQ(csteps[0].forks[0].parent, c.root);
  EXPECT_EQ(csteps[0].forks[0].children.size(), 4u);
  EXPECT_EQ(c.cached_tokens, static_cast<int64_t>(a.prompt.size()));

  // Another API key (scope) sees nothing; a job that skips the cache neither looks nor cuts.
  Job d = MakeJob(4, a.prompt, 1, {10});
  d.prefix_scope = "other key";
  EXPECT_EQ(RunPrompt(s, d, Pages(1000))[0].prefills[0].copy_of, -1);
  Job e = MakeJob(5, Concat(Range(1, 10), Range(90, 4)), 1, {10});
  e.prefix_cache = false;
  const std::vector<StepDecision> esteps = RunPrompt(s, e, Pages(1000));
  EXPECT_EQ(esteps[0].prefills[0].copy_of, -1);
  EXPECT_EQ(esteps[0].prefills[0].tokens.size(), 14u);  // not cut at 10
  EXPECT_EQ(esteps[0].prefix.misses, 0);
  // A scored prompt needs every token computed: it never copies.
  Job f = MakeJob(6, a.prompt, 1);
  f.prompt_logprobs = true;
  EXPECT_EQ(RunPrompt(s, f, Pages(1000))[0].prefills[0].copy_of, -1);
}

TEST(SchedulerPrefixCache, AJobWaitsAStepForTheSnapshotThatStepTakes) {
  // Two queued jobs share a prefix: the first one's snapshot exists only after this step's
  // forward pass, so the plan cannot copy it yet; the second waits a step and copies it then,
  // rather than prefilling the prefix a second time. A job with another prompt goes on.
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 64});
  Job a = MakeJob(1, Concat(Range(1, 10), Range(50, 4)), 1, {10});
  Job b = MakeJob(2, Concat(Range(1, 10), Range(60, 4)), 1, {10});
  Job other = MakeJob(3, Range(100, 8), 1);
  std::vector<Job*> jobs = {&a, &b, &other};
  const StepDecision d = s.Plan(jobs, Pages(1000));
  ASSERT_EQ(d.snapshots.size(), 1u);
  ASSERT_EQ(d.prefills.size(), 2u);
  EXPECT_EQ(d.prefills[0].seq, a.root);
  EXPECT_EQ(d.prefills[1].seq, other.root);
  EXPECT_EQ(b.phase, JobPhase::kQueued);
  const StepDecision next = s.Plan(jobs, Pages(1000));
  bool copied = false;
  for (const PlannedPrefill& p : next.prefills) {
    if (p.seq == b.root) {
      copied = p.copy_of == d.snapshots[0].seq;
      EXPECT_EQ(p.tokens, Range(60, 4));
    }
  }
  EXPECT_TRUE(copied);
  EXPECT_EQ(b.cached_tokens, 10);
}

TEST(SchedulerPrefixCache, AFailedJobsRootIsFreedNotCached) {
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 64});
  Job a = MakeJob(1, Range(1, 12), 1);
  RunPrompt(s, a, Pages(1000));
  const SeqId root = a.root;
  Finish(a);
  a.cache_root = false;
  std::vector<Job*> jobs = {&a};
  const StepDecision d = s.Plan(jobs, Pages(1000));
  EXPECT_EQ(std::count(d.frees.begin(), d.frees.end(), root), 1);
  EXPECT_TRUE(s.prefix_cache().empty());
}

TEST(SchedulerPrefixCache, EntriesBeyondTheCapAreFreedLeastRecentlyUsedFirst) {
  // Pages(…) projects streams · (ceil(tokens / 4) + 2) pages per entry: 2 · (3 + 2) = 10 for
  // a 12-token prompt. A cap of 25 pages holds two such entries.
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 64, .prefix_cache_fraction = 0.25});
  const Capacity cap = Pages(1000, /*total=*/100);
  std::vector<SeqId> roots;
  for (int i = 0; i < 3; ++i) {
    Job job = MakeJob(i + 1, Range(100 * (i + 1), 12), 1);
    RunPrompt(s, job, cap);
    roots.push_back(job.root);
    Finish(job);
    std::vector<Job*> jobs = {&job};
    const StepDecision d = s.Plan(jobs, cap);
    EXPECT_EQ(d.cached, std::vector<SeqId>{roots.back()});
    // The branch's sequence is freed; the third entry passes the cap: the oldest goes too.
    EXPECT_EQ(std::count(d.frees.begin(), d.frees.end(), roots[0]), i == 2 ? 1 : 0);
    EXPECT_EQ(d.frees.size(), i == 2 ? 2u : 1u);
    EXPECT_EQ(d.prefix.evictions, i == 2 ? 1 : 0);
  }
  EXPECT_EQ(s.prefix_cache().size(), 2u);
  EXPECT_EQ(s.prefix_cache().Get(roots[0]), nullptr);
}

TEST(SchedulerPrefixCache, UnderMemoryPressureEntriesGoBeforeBranchesArePreempted) {
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 64});
  // An entry of a finished job, then a job with 2 running branches.
  const SeqId entry = CacheAFinishedJob(s, 1, Range(1, 12));
  Job job = MakeJob(2, Range(200, 12), 2);
  RunPrompt(s, job, Pages(1000));
  std::vector<Job*> jobs = {&job};

  // Each decode may need up to 2 · streams = 4 pages; 5 are free: the entry is freed and the
  // second decode waits a step (keeping its pages) instead of being preempted.
  const StepDecision d = s.Plan(jobs, Pages(5));
  EXPECT_EQ(d.frees, std::vector<SeqId>{entry});
  EXPECT_EQ(d.prefix.evictions, 1);
  EXPECT_TRUE(d.preempted.empty());
  EXPECT_EQ(d.decodes.size(), 1u);
  EXPECT_TRUE(s.prefix_cache().empty());

  // With nothing left to evict, pressure preempts as before.
  const StepDecision next = s.Plan(jobs, Pages(5));
  EXPECT_EQ(next.preempted.size(), 1u);
}

TEST(SchedulerPrefixCache, APromptThatDoesNotFitFreesEntriesForTheNextStep) {
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 64});
  CacheAFinishedJob(s, 1, Range(1, 12));
  ASSERT_EQ(s.prefix_cache().size(), 1u);

  Job big = MakeJob(2, Range(500, 40), 1);
  std::vector<Job*> jobs = {&big};
  const StepDecision d = s.Plan(jobs, Pages(10));
  EXPECT_TRUE(d.prefills.empty());
  EXPECT_TRUE(d.capacity_limited);
  EXPECT_EQ(d.frees.size(), 1u);
  EXPECT_TRUE(s.prefix_cache().empty());
}

}  // namespace
}  // namespace rami::coordinator
