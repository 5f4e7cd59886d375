// The scheduler as a pure function, against a fake capacity model: budgets respected, the
// prompt prefilled once then forked, forks limited by pages, preemption of the youngest with
// replay, priority and FCFS without starvation, frees of finished branches.
#include "coordinator/scheduler/scheduler.h"

#include <map>
#include <numeric>

#include "gtest/gtest.h"

namespace rami::coordinator {
namespace {

Job MakeJob(JobId id, int prompt_tokens, int n, int priority = 0) {
  Job job;
  job.id = id;
  job.arrival = id;
  job.priority = priority;
  job.root_sampling.seed = 99;
  job.prompt.resize(prompt_tokens);
  std::iota(job.prompt.begin(), job.prompt.end(), 1);
  for (int i = 0; i < n; ++i) {
    Branch b;
    b.index = i;
    b.sampling.seed = 100 + i;
    job.branches.push_back(b);
  }
  return job;
}

Capacity Pages(int64_t free) {
  Capacity c;
  c.free_pages = free;
  c.page_size = 4;
  c.streams = 2;
  return c;
}

int64_t PrefillTokens(const StepDecision& d) {
  int64_t n = 0;
  for (const PlannedPrefill& p : d.prefills) n += static_cast<int64_t>(p.tokens.size());
  return n;
}

TEST(Scheduler, PrefillsThePromptOnceInChunksThenForks) {
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 16});
  Job job = MakeJob(1, 40, 8);
  std::vector<Job*> jobs = {&job};
  std::vector<int32_t> fed;
  int steps = 0;
  while (job.phase != JobPhase::kRunning) {
    const StepDecision d = s.Plan(jobs, Pages(1000));
    ASSERT_EQ(d.prefills.size(), 1u);
    EXPECT_EQ(d.prefills[0].create, steps == 0);
    if (steps == 0) {
      EXPECT_EQ(d.prefills[0].sampling.seed, 99u);  // the root's
    }
    EXPECT_FALSE(d.prefills[0].sample);
    EXPECT_LE(d.prefills[0].tokens.size(), 16u);
    fed.insert(fed.end(), d.prefills[0].tokens.begin(), d.prefills[0].tokens.end());
    if (job.phase == JobPhase::kRunning) {
      ASSERT_EQ(d.forks.size(), 1u);  // the step of the last chunk forks all 8 branches
      EXPECT_EQ(d.forks[0].parent, job.root);
      EXPECT_EQ(d.forks[0].children.size(), 8u);
      for (const PlannedForkChild& child : d.forks[0].children) {
        EXPECT_EQ(child.sampling.seed, 100u + child.branch);  // each child its own stream
      }
    } else {
      EXPECT_TRUE(d.forks.empty());
    }
    ++steps;
  }
  EXPECT_EQ(fed, job.prompt);  // every prompt token exactly once, in order
  EXPECT_EQ(steps, 3);
  const StepDecision next = s.Plan(jobs, Pages(1000));
  EXPECT_TRUE(next.prefills.empty());
  EXPECT_EQ(next.decodes.size(), 8u);
}

TEST(Scheduler, RespectsTokenAndPageBudgets) {
  Scheduler s({.max_step_tokens = 20, .max_prefill_chunk = 12});
  std::vector<Job> owned;
  for (int i = 0; i < 5; ++i) owned.push_back(MakeJob(i, 30, 4));
  std::vector<Job*> jobs;
  for (Job& j : owned) jobs.push_back(&j);
  for (int step = 0; step < 30; ++step) {
    const Capacity cap = Pages(60);
    const StepDecision d = s.Plan(jobs, cap);
    EXPECT_LE(PrefillTokens(d) + static_cast<int64_t>(d.decodes.size()), 20);
    EXPECT_LE(d.reserved_pages, cap.free_pages);
  }
}

// At most max_step_sequences sequences get tokens in a step (what the workers reserved their
// step buffers for); the rest decode in later steps.
TEST(Scheduler, RespectsTheSequencesPerStep) {
  Scheduler s({.max_step_tokens = 64, .max_step_sequences = 5, .max_prefill_chunk = 12});
  std::vector<Job> owned;
  for (int i = 0; i < 4; ++i) owned.push_back(MakeJob(i, 6, 4));
  std::vector<Job*> jobs;
  for (Job& j : owned) jobs.push_back(&j);
  size_t most = 0;
  for (int step = 0; step < 20; ++step) {
    const StepDecision d = s.Plan(jobs, Pages(10000));
    const size_t sequences = d.prefills.size() + d.decodes.size();
    EXPECT_LE(sequences, 5u) << "step " << step;
    most = std::max(most, sequences);
  }
  EXPECT_EQ(most, 5u);  // 16 branches want to run: the limit binds
}

TEST(Scheduler, ForksWhatFitsAndTheRestLater) {
  Scheduler s({});
  Job job = MakeJob(1, 8, 10);
  std::vector<Job*> jobs = {&job};
  // Chunk bound 2·2·(2+1) = 12, fork bound 4 per child: 30 pages fit the prompt + 4 forks.
  const StepDecision first = s.Plan(jobs, Pages(30));
  ASSERT_EQ(first.forks.size(), 1u);
  EXPECT_EQ(first.forks[0].children.size(), 4u);
  EXPECT_EQ(job.RunningBranches(), 4);
  Capacity cap = Pages(1000);
  for (const PlannedForkChild& child : first.forks[0].children) cap.decode_need[child.seq] = 0;
  const StepDecision second = s.Plan(jobs, cap);
  EXPECT_EQ(second.decodes.size(), 4u);
  ASSERT_EQ(second.forks.size(), 1u);
  EXPECT_EQ(second.forks[0].children.size(), 6u);
  EXPECT_EQ(second.forks[0].parent, job.root);  // forked later from the frozen root
}

TEST(Scheduler, PreemptsTheYoungestAndReplaysThemLater) {
  Scheduler s({});
  Job old_job = MakeJob(1, 4, 2), young_job = MakeJob(2, 4, 2);
  std::vector<Job*> jobs = {&old_job, &young_job};
  s.Plan(jobs, Pages(1000));  // both prompts + forks
  ASSERT_EQ(old_job.RunningBranches() + young_job.RunningBranches(), 4);
  for (Job* j : jobs) {
    for (Branch& b : j->branches) b.tokens = {7, 8, 9};  // generated so far
  }
  // Each decode needs 3 pages; 7 pages run two branches.
  Capacity cap = Pages(7);
  for (Job* j : jobs) {
    for (Branch& b : j->branches) cap.decode_need[b.seq] = 3;
  }
  const StepDecision d = s.Plan(jobs, cap);
  ASSERT_EQ(d.decodes.size(), 2u);
  EXPECT_EQ(d.decodes[0].owner.job, 1);
  EXPECT_EQ(d.decodes[1].owner.job, 1);
  ASSERT_EQ(d.preempted.size(), 2u);
  EXPECT_EQ(d.preempted[0].job, 2);
  EXPECT_EQ(d.preempted[0].branch, 1);  // the youngest first
  EXPECT_EQ(d.frees.size(), 2u);
  EXPECT_EQ(young_job.branches[1].phase, BranchPhase::kPreempted);
  // With pages back, they are re-forked from the root and replay their tokens.
  const StepDecision refork = s.Plan(jobs, Pages(1000));
  ASSERT_EQ(refork.forks.size(), 1u);
  EXPECT_EQ(refork.forks[0].job, 2);
  EXPECT_EQ(refork.forks[0].children.size(), 2u);
  const StepDecision replay = s.Plan(jobs, Pages(1000));
  int replays = 0;
  for (const PlannedPrefill& p : replay.prefills) {
    EXPECT_EQ(p.tokens, (std::vector<int32_t>{7, 8, 9}));
    EXPECT_EQ(p.generated_tokens, 3);
    EXPECT_TRUE(p.sample);
    ++replays;
  }
  EXPECT_EQ(replays, 2);
  EXPECT_EQ(replay.decodes.size(), 2u);  // the old job's branches kept decoding
}

// Found by tests/soak/soak.sh: a branch re-forked after a relocation (its replay still to
// come) whose job is aborted. The next plan frees its sequence and must not replay into it
// (the worker refused the step: "prefills: sequence -1 is unknown", failing the whole group).
TEST(Scheduler, ABranchEndedBeforeItsReplayIsFreedNotReplayed) {
  Scheduler s({});
  Job job = MakeJob(1, 4, 2);
  for (Branch& b : job.branches) {
    b.tokens = {7, 8, 9};
    b.phase = BranchPhase::kPreempted;  // as placed on a new group with its tokens so far
  }
  std::vector<Job*> jobs = {&job};
  const StepDecision refork = s.Plan(jobs, Pages(1000));  // prompt, then the re-forks
  ASSERT_EQ(refork.forks.size(), 1u);
  ASSERT_TRUE(job.branches[0].replay_pending);
  const SeqId seq = job.branches[0].seq;
  job.branches[0].Finish();  // the job was aborted before the replay
  EXPECT_FALSE(job.branches[0].replay_pending);
  job.branches[0].replay_pending = true;  // even were it left set, the scheduler skips it
  const StepDecision next = s.Plan(jobs, Pages(1000));
  EXPECT_EQ(next.frees, std::vector<SeqId>{seq});
  ASSERT_EQ(next.prefills.size(), 1u);  // branch 1's replay only
  EXPECT_EQ(next.prefills[0].seq, job.branches[1].seq);
  for (const PlannedPrefill& p : next.prefills) EXPECT_GE(p.seq, 0);
}

TEST(Scheduler, PriorityFirstAndNoOvertakingWithinIt) {
  Scheduler s({.max_step_tokens = 16, .max_prefill_chunk = 16});
  Job low = MakeJob(1, 8, 1, /*priority=*/0), high = MakeJob(2, 8, 1, /*priority=*/5);
  Job big = MakeJob(3, 8, 1, /*priority=*/0);
  std::vector<Job*> jobs = {&low, &high, &big};
  SortForScheduling(jobs);
  ASSERT_EQ(jobs[0], &high);
  // Pages for one prompt only: the high-priority job goes first, then low, then big.
  const StepDecision first = s.Plan(jobs, Pages(20));
  ASSERT_EQ(first.prefills.size(), 1u);
  EXPECT_EQ(first.prefills[0].owner.job, 2);
  const StepDecision second = s.Plan(jobs, Pages(20));
  ASSERT_FALSE(second.prefills.empty());
  EXPECT_EQ(second.prefills[0].owner.job, 1);  // FCFS: big (later) does not overtake
}

TEST(Scheduler, FreesFinishedBranchesAndRoots) {
  Scheduler s({});
  Job job = MakeJob(1, 4, 3);
  std::vector<Job*> jobs = {&job};
  s.Plan(jobs, Pages(1000));
  const SeqId first = job.branches[0].seq;
  job.branches[0].phase = BranchPhase::kFinished;
  job.branches[0].free_pending = true;
  Capacity cap = Pages(0);
  cap.unshared_pages[first] = 5;
  for (int i = 1; i < 3; ++i) cap.decode_need[job.branches[i].seq] = 2;
  const StepDecision d = s.Plan(jobs, cap);
  EXPECT_EQ(d.frees, std::vector<SeqId>{first});
  EXPECT_EQ(d.decodes.size(), 2u);  // paid for by the freed branch's 5 pages
  EXPECT_TRUE(d.preempted.empty());
}

TEST(Scheduler, EveryChunkOfAScoredPromptAsksForItsLogprobs) {
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 4});
  Job job = MakeJob(1, 10, 2);
  job.prompt_logprobs = true;
  job.root_sampling.logprobs = 3;
  std::vector<Job*> jobs = {&job};
  int chunks = 0;
  while (job.phase != JobPhase::kRunning) {
    const StepDecision d = s.Plan(jobs, Pages(1000));
    ASSERT_EQ(d.prefills.size(), 1u);
    EXPECT_TRUE(d.prefills[0].prompt_logprobs);
    if (d.prefills[0].create) {
      EXPECT_EQ(d.prefills[0].sampling.logprobs, 3);
    }
    ++chunks;
  }
  EXPECT_EQ(chunks, 3);
  Job plain = MakeJob(2, 3, 1);
  jobs = {&plain};
  EXPECT_FALSE(s.Plan(jobs, Pages(1000)).prefills.at(0).prompt_logprobs);
}

// A score-only job has no branches: its root is prefilled and nothing is forked.
TEST(Scheduler, AJobWithoutBranchesOnlyPrefills) {
  Scheduler s({.max_step_tokens = 64, .max_prefill_chunk = 8});
  Job job = MakeJob(1, 10, 0);
  job.prompt_logprobs = true;
  std::vector<Job*> jobs = {&job};
  EXPECT_EQ(s.Plan(jobs, Pages(1000)).prefills.size(), 1u);
  const StepDecision last = s.Plan(jobs, Pages(1000));
  EXPECT_EQ(last.prefills.size(), 1u);
  EXPECT_TRUE(last.forks.empty());
  EXPECT_TRUE(job.root_ready);
  EXPECT_TRUE(s.Plan(jobs, Pages(1000)).empty());
}

}  // namespace
}  // namespace rami::coordinator
