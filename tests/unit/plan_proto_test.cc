// The worker service's plan and result conversions (worker/service/plan_proto.h) carry prompt
// scoring both ways: PrefillChunk.prompt_logprobs into PlanPrefill, StepOutcome's prompt
// log-probs into StepResult.prompt_logprobs, field by field and in order.
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
  const engine::StepPlan plan = service::PlanFromProto(proto);
  ASSERT_EQ(plan.prefills.size(), 2u);
  EXPECT_EQ(plan.prefills[0].seq_id, 7);
  EXPECT_TRUE(plan.prefills[0].prompt_logprobs);
  EXPECT_EQ(plan.prefills[0].tokens, (std::vector<int32_t>{3, 9}));
  ASSERT_TRUE(plan.prefills[0].sampling.has_value());
  EXPECT_EQ(plan.prefills[0].sampling->logprobs, 2);
  EXPECT_FALSE(plan.prefills[1].prompt_logprobs);
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
