// The worker service's plan and result conversions (worker/service/plan_proto.h) carry prompt
// scoring both ways: PrefillChunk.prompt_logprobs into PlanPrefill, StepOutcome's prompt
// log-probs into StepResult.prompt_logprobs, field by field and in order; and prefix-cache
// copies and snapshots into the plan (PrefillChunk.copy_of, StepPlan.snapshots), refusing a
// copy_of without create and a chunk without tokens that is not a copy, naming the field.
#include "worker/service/plan_proto.h"

#include "gtest/gtest.h"

namespace rami {
namespace {

using engine::PromptLogprobs;
using engine::StepOutcome;

TEST(PlanProto, PrefillCarriesPromptLogprobs) {
  worker::v1::StepPlan proto;
  proto.set_step_id(4);
  worker::v1::PrefillChunk* scored = proto.add_prefills();
  scored->set_seq_id(7);
  scored->add_token_ids(3);
  scored->add_token_ids(9);
  scored->set_create(true);
  scored->mutable_sampling()->set_logprobs(2);
  scored->set_prompt_logprobs(true);
  worker::v1::PrefillChunk* plain = proto.add_prefills();
  plain->set_seq_id(8);
  plain->add_token_ids(1);
  const absl::StatusOr<engine::StepPlan> converted = service::PlanFromProto(proto);
  ASSERT_TRUE(converted.ok()) << converted.status();
  const engine::StepPlan& plan = *converted;
  ASSERT_EQ(plan.prefills.size(), 2u);
  EXPECT_EQ(plan.prefills[0].seq_id, 7);
  EXPECT_TRUE(plan.prefills[0].prompt_logprobs);
  EXPECT_EQ(plan.prefills[0].tokens, (std::vector<int32_t>{3, 9}));
  ASSERT_TRUE(plan.prefills[0].sampling.has_value());
  EXPECT_EQ(plan.prefills[0].sampling->logprobs, 2);
  EXPECT_FALSE(plan.prefills[1].prompt_logprobs);
  EXPECT_FALSE(plan.prefills[0].copy_of.has_value());
  EXPECT_TRUE(plan.snapshots.empty());
}

TEST(PlanProto, PlanCarriesCopiesAndSnapshots) {
  worker::v1::StepPlan proto;
  proto.set_step_id(5);
  worker::v1::PrefillChunk* hit = proto.add_prefills();  // the whole prompt cached
  hit->set_seq_id(20);
  hit->set_create(true);
  hit->set_copy_of(100);
  hit->mutable_sampling()->set_seed(3);
  worker::v1::PrefillChunk* rest = proto.add_prefills();  // a copy continued by a chunk
  rest->set_seq_id(21);
  rest->set_create(true);
  rest->set_copy_of(0);  // sequence 0 is a sequence like any other
  rest->add_token_ids(4);
  worker::v1::PrefillChunk* plain = proto.add_prefills();
  plain->set_seq_id(22);
  plain->set_create(true);
  plain->add_token_ids(5);
  worker::v1::Snapshot* a = proto.add_snapshots();
  a->set_source(22);
  a->set_seq_id(101);
  worker::v1::Snapshot* b = proto.add_snapshots();
  b->set_source(21);
  b->set_seq_id(102);
  const absl::StatusOr<engine::StepPlan> plan = service::PlanFromProto(proto);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->prefills.size(), 3u);
  EXPECT_EQ(plan->prefills[0].copy_of, std::optional<kv::SeqId>(100));
  EXPECT_TRUE(plan->prefills[0].tokens.empty());
  ASSERT_TRUE(plan->prefills[0].sampling.has_value());
  EXPECT_EQ(plan->prefills[0].sampling->seed, 3u);
  EXPECT_EQ(plan->prefills[1].copy_of, std::optional<kv::SeqId>(0));
  EXPECT_EQ(plan->prefills[1].tokens, (std::vector<int32_t>{4}));
  EXPECT_FALSE(plan->prefills[2].copy_of.has_value());
  ASSERT_EQ(plan->snapshots.size(), 2u);
  EXPECT_EQ(plan->snapshots[0].source, 22);
  EXPECT_EQ(plan->snapshots[0].seq_id, 101);
  EXPECT_EQ(plan->snapshots[1].source, 21);
  EXPECT_EQ(plan->snapshots[1].seq_id, 102);
}

TEST(PlanProto, RefusesCopyOfWithoutCreateAndChunksWithoutTokens) {
  worker::v1::StepPlan proto;
  proto.set_step_id(6);
  worker::v1::PrefillChunk* ok = proto.add_prefills();
  ok->set_seq_id(1);
  ok->add_token_ids(2);
  worker::v1::PrefillChunk* bad = proto.add_prefills();
  bad->set_seq_id(7);
  bad->add_token_ids(3);
  bad->set_copy_of(100);
  absl::StatusOr<engine::StepPlan> plan = service::PlanFromProto(proto);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << plan.status();
  EXPECT_NE(plan.status().message().find("step 6: prefills[1].copy_of: 100 without create"),
            std::string::npos)
      << plan.status();

  bad->set_create(true);
  ASSERT_TRUE(service::PlanFromProto(proto).ok());
  bad->clear_token_ids();
  ASSERT_TRUE(service::PlanFromProto(proto).ok());  // a copy of a whole prompt
  bad->clear_copy_of();
  plan = service::PlanFromProto(proto);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << plan.status();
  EXPECT_NE(plan.status().message().find("step 6: prefills[1].token_ids: empty"), std::string::npos)
      << plan.status();
}

TEST(PlanProto, OutcomeCarriesPromptLogprobsInOrder) {
  StepOutcome outcome;
  PromptLogprobs a{.seq_id = 7, .tokens = {}};
  a.tokens.push_back(
      {.position = 1,
       .score = {.token_id = 9,
                 .logprob = -1.5f,
                 .top = {{.token_id = 4, .logprob = -0.25f}, {.token_id = 9, .logprob = -1.5f}}}});
  a.tokens.push_back({.position = 2, .score = {.token_id = 5, .logprob = -3.0f, .top = {}}});
  outcome.prompt_logprobs = {a, {.seq_id = 8, .tokens = {}}};
  worker::v1::StepResult proto;
  service::OutcomeToProto(outcome, 4, 1, &proto);
  ASSERT_EQ(proto.prompt_logprobs_size(), 2);
  const worker::v1::PromptLogprobs& got = proto.prompt_logprobs(0);
  EXPECT_EQ(got.seq_id(), 7);
  ASSERT_EQ(got.tokens_size(), 2);
  EXPECT_EQ(got.tokens(0).position(), 1);
  EXPECT_EQ(got.tokens(0).token_id(), 9);
  EXPECT_EQ(got.tokens(0).logprob(), -1.5f);
  ASSERT_EQ(got.tokens(0).top_size(), 2);
  EXPECT_EQ(got.tokens(0).top(0).token_id(), 4);
  EXPECT_EQ(got.tokens(0).top(0).logprob(), -0.25f);
  EXPECT_EQ(got.tokens(0).top(1).token_id(), 9);
  EXPECT_EQ(got.tokens(1).position(), 2);
  EXPECT_EQ(got.tokens(1).token_id(), 5);
  EXPECT_EQ(got.tokens(1).logprob(), -3.0f);
  EXPECT_EQ(got.tokens(1).top_size(), 0);
  EXPECT_EQ(proto.prompt_logprobs(1).seq_id(), 8);
  EXPECT_EQ(proto.prompt_logprobs(1).tokens_size(), 0);
  EXPECT_EQ(proto.tokens_size(), 0);
}

}  // namespace
}  // namespace rami
