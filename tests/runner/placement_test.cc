// Placement: headroom counts the work placed but not started; equal groups split a job, a
// small job stays on one group when a second copy of its prompt would cost more.
#include "coordinator/runner/placement.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rami::coordinator {
namespace {

using ::testing::ElementsAre;

Capacity Pages(int64_t free) {
  Capacity c;
  c.free_pages = free;
  c.page_size = 4;
  c.streams = 1;
  return c;
}

std::unique_ptr<JobState> Job(JobId id, int prompt_tokens, int n, int max_tokens) {
  api::ValidatedRequest r;
  r.prompt_token_ids.assign(prompt_tokens, 1);
  r.n = n;
  r.stopping.max_tokens = max_tokens;
  return *JobState::Create(id, r, nullptr);
}

TEST(Placement, HeadroomSubtractsWaitingBranchesAndUnprefilledPrompts) {
  const Capacity cap = Pages(1000);
  JobTable jobs;
  jobs[1] = Job(1, 8, 3, 16);  // each branch: (16 / 4 + 2) = 6 pages; prompt: 2 * (2 + 1) = 6
  for (Branch& b : jobs[1]->TakeUnplaced()) jobs[1]->AddToGroup(7, std::move(b));
  EXPECT_EQ(Headroom(7, cap, jobs), 1000 - 3 * 6 - 6);
  EXPECT_EQ(Headroom(8, cap, jobs), 1000);  // nothing placed on group 8
  // Started branches and a prefilled prompt are in the free pages already.
  jobs[1]->parts.at(7).root_ready = true;
  jobs[1]->branch(0)->phase = BranchPhase::kRunning;
  EXPECT_EQ(Headroom(7, cap, jobs), 1000 - 2 * 6);
}

TEST(Placement, EqualGroupsSplitAJob) {
  const Capacity a = Pages(1000), b = Pages(1000);
  std::vector<PlacementGroup> groups = {{1, &a, 1000}, {2, &b, 1000}};
  std::unique_ptr<JobState> job = Job(1, 8, 4, 16);
  EXPECT_THAT(PlaceBranches(*job, job->TakeUnplaced(), groups), ElementsAre(1, 2, 1, 2));
  EXPECT_EQ(job->parts.size(), 2u);
  EXPECT_EQ(groups[0].headroom, 1000 - 6 - 2 * 6);  // one prompt copy, two branches
  EXPECT_EQ(groups[0].headroom, groups[1].headroom);
}

TEST(Placement, ASmallJobStaysOnOneGroupWhenAPromptCopyCostsMore) {
  const Capacity a = Pages(1000), b = Pages(1000);
  std::vector<PlacementGroup> groups = {{1, &a, 1000}, {2, &b, 990}};
  // A 64-token prompt costs 2 * (16 + 1) = 34 pages per copy; two short branches stay together.
  std::unique_ptr<JobState> job = Job(1, 64, 2, 4);
  EXPECT_THAT(PlaceBranches(*job, job->TakeUnplaced(), groups), ElementsAre(1, 1));
  EXPECT_EQ(job->parts.count(2), 0u);
}

TEST(Placement, TheGroupWithMoreRoomGetsTheBranches) {
  const Capacity a = Pages(100), b = Pages(1000);
  std::vector<PlacementGroup> groups = {{1, &a, 100}, {2, &b, 1000}};
  std::unique_ptr<JobState> job = Job(1, 8, 3, 16);
  EXPECT_THAT(PlaceBranches(*job, job->TakeUnplaced(), groups), ElementsAre(2, 2, 2));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(job->state(i).group, 2);
}

TEST(Placement, AScoreOnlyRootGoesWhereTheMostPagesRemain) {
  const Capacity a = Pages(1000), b = Pages(1000);
  std::vector<PlacementGroup> groups = {{1, &a, 500}, {2, &b, 900}};
  api::ValidatedRequest r;
  r.prompt_token_ids.assign(8, 1);
  r.n = 0;
  r.prompt_logprobs = 0;
  r.score_only = true;
  std::unique_ptr<JobState> job = *JobState::Create(1, r, nullptr);
  EXPECT_EQ(PlaceRoot(*job, groups), 2);
  EXPECT_EQ(job->parts.count(2), 1u);
  EXPECT_EQ(groups[1].headroom, 900 - 6);
}

TEST(Placement, AGroupHoldingTheJobsPrefixIsPreferredUnlessItsLoadSaysOtherwise) {
  const Capacity a = Pages(1000), b = Pages(1000);
  // A 64-token prompt, of which group 2 has the first 60 tokens cached for the job's scope.
  std::unique_ptr<JobState> job = Job(1, 64, 2, 4);
  job->SetOwner("key");
  PrefixCache cached;
  cached.Insert(job->facts().prefix_scope, std::vector<int32_t>(60, 1), 5, 1, 40, 1);
  std::vector<PlacementGroup> groups = {{1, &a, 1000, nullptr}, {2, &b, 990, &cached}};
  EXPECT_THAT(PlaceBranches(*job, job->TakeUnplaced(), groups), ElementsAre(2, 2));
  // Another key's job with the same prompt finds nothing there: the roomier group wins.
  std::unique_ptr<JobState> other = Job(2, 64, 1, 4);
  other->SetOwner("another key");
  std::vector<PlacementGroup> fresh = {{1, &a, 1000, nullptr}, {2, &b, 990, &cached}};
  EXPECT_THAT(PlaceBranches(*other, other->TakeUnplaced(), fresh), ElementsAre(1));
  // A group with the prefix but much less room loses.
  std::unique_ptr<JobState> third = Job(3, 64, 1, 4);
  third->SetOwner("key");
  std::vector<PlacementGroup> loaded = {{1, &a, 1000, nullptr}, {2, &b, 900, &cached}};
  EXPECT_THAT(PlaceBranches(*third, third->TakeUnplaced(), loaded), ElementsAre(1));
}

}  // namespace
}  // namespace rami::coordinator
