// ValidateRequest on good requests: every default resolved (n, sampling, max_tokens shrunk to
// the context, EOS joined to the stop ids, pruning), every set field carried through; and
// ServerLimits::Validate.
#include <string>

#include "coordinator/api/request_validation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/test_models.h"

namespace rami::api {
namespace {

using rami::v1::GenerateRequest;
using testing::BaseRequest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::kNow;
using testing::SetTokens;

const ModelFrontEnd& Tiny() {
  static const ModelFrontEnd* model = new ModelFrontEnd(testing::TinyModel());
  return *model;
}

TEST(ValidatedRequestTest, DefaultsAreResolved) {
  absl::StatusOr<ValidatedRequest> v = ValidateRequest(BaseRequest(), Tiny(), ServerLimits(), kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->model, "qwen3_dms");
  EXPECT_THAT(v->prompt_token_ids, ElementsAre(1, 2, 3));
  EXPECT_EQ(v->n, 1);
  EXPECT_EQ(v->sampling.temperature, 1.0f);
  EXPECT_EQ(v->sampling.top_p, 1.0f);
  EXPECT_EQ(v->sampling.top_k, 0);
  EXPECT_EQ(v->sampling.min_p, 0.0f);
  EXPECT_EQ(v->sampling.seed, 0u);
  EXPECT_EQ(v->stopping.max_tokens, 256);
  EXPECT_THAT(v->stopping.stop, IsEmpty());
  EXPECT_THAT(v->stopping.stop_token_ids, ElementsAre(0));  // the model's EOS
  EXPECT_THAT(v->stopping.eos_token_ids, ElementsAre(0));
  EXPECT_FALSE(v->stopping.ignore_eos);
  EXPECT_EQ(v->logprobs, 0);
  EXPECT_EQ(v->aggregation.policy, AggregationPolicy::kNone);
  EXPECT_EQ(v->aggregation.extractor_regex, "");
  const PruningOptions& p = v->aggregation.pruning;
  EXPECT_FALSE(p.enabled);
  EXPECT_EQ(p.warmup_branches, 4);
  EXPECT_EQ(p.window_tokens, 64);
  EXPECT_EQ(p.percentile, 10.0);
  EXPECT_EQ(p.confidence_top_k, 5);
  EXPECT_FALSE(p.stop_when_decided);
  EXPECT_EQ(v->priority, 0);
  EXPECT_EQ(v->deadline, absl::InfiniteFuture());
  EXPECT_FALSE(v->stream_deltas);
}

TEST(ValidatedRequestTest, DefaultMaxTokensShrinksToTheContext) {
  GenerateRequest r = BaseRequest();
  SetTokens(&r, 400);
  auto v = ValidateRequest(r, Tiny(), ServerLimits(), kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->stopping.max_tokens, 112);  // 512 - 400 < the default 256

  ServerLimits capped;
  capped.max_context = 100;  // below the model's 512
  v = ValidateRequest(BaseRequest(), Tiny(), capped, kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->stopping.max_tokens, 97);

  r = BaseRequest();
  r.mutable_stopping()->set_max_tokens(509);  // exactly fills the context
  v = ValidateRequest(r, Tiny(), ServerLimits(), kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->stopping.max_tokens, 509);
}

TEST(ValidatedRequestTest, StopTokenIdsJoinTheEosIdsUnlessIgnored) {
  GenerateRequest r = BaseRequest();
  for (int id : {7, 5, 7, 0}) r.mutable_stopping()->add_stop_token_ids(id);
  auto v = ValidateRequest(r, Tiny(), ServerLimits(), kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->stopping.stop_token_ids, ElementsAre(0, 5, 7));
  EXPECT_THAT(v->stopping.eos_token_ids, ElementsAre(0));

  r.mutable_stopping()->set_ignore_eos(true);
  v = ValidateRequest(r, Tiny(), ServerLimits(), kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->stopping.stop_token_ids, ElementsAre(0, 5, 7));  // 0 asked for explicitly
  EXPECT_THAT(v->stopping.eos_token_ids, IsEmpty());
  r.mutable_stopping()->set_stop_token_ids(3, 9);
  v = ValidateRequest(r, Tiny(), ServerLimits(), kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->stopping.stop_token_ids, ElementsAre(5, 7, 9));
}

TEST(ValidatedRequestTest, EveryFieldSetIsCarriedThrough) {
  GenerateRequest r = BaseRequest();
  r.set_model("qwen3_dms");
  r.set_n(8);
  rami::v1::Sampling* s = r.mutable_sampling();
  s->set_temperature(0);  // explicit greedy, not the default 1
  s->set_top_p(0.9f);
  s->set_top_k(40);
  s->set_min_p(0.05f);
  s->set_seed(42);
  r.mutable_stopping()->add_stop("</answer>");
  r.mutable_stopping()->set_max_tokens(100);
  r.set_logprobs(20);
  rami::v1::Aggregation* a = r.mutable_aggregation();
  a->set_policy(rami::v1::MAJORITY_VOTE);
  a->mutable_extractor()->set_regex("answer: (\\d+)");
  a->mutable_pruning()->set_enabled(true);
  a->mutable_pruning()->set_warmup_branches(2);
  a->mutable_pruning()->set_window_tokens(16);
  a->mutable_pruning()->set_percentile(50);
  a->mutable_pruning()->set_confidence_top_k(3);
  a->mutable_pruning()->set_stop_when_decided(true);
  r.set_priority(3);
  r.mutable_deadline()->set_seconds(1'700'000'010);
  r.mutable_deadline()->set_nanos(5);
  r.set_stream_deltas(true);
  auto v = ValidateRequest(r, Tiny(), ServerLimits(), kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->n, 8);
  EXPECT_EQ(v->sampling.temperature, 0.0f);
  EXPECT_EQ(v->sampling.top_p, 0.9f);
  EXPECT_EQ(v->sampling.top_k, 40);
  EXPECT_EQ(v->sampling.min_p, 0.05f);
  EXPECT_EQ(v->sampling.seed, 42u);
  EXPECT_THAT(v->stopping.stop, ElementsAre("</answer>"));
  EXPECT_EQ(v->stopping.max_tokens, 100);
  EXPECT_EQ(v->logprobs, 20);
  EXPECT_EQ(v->aggregation.policy, AggregationPolicy::kMajorityVote);
  EXPECT_EQ(v->aggregation.extractor_regex, "answer: (\\d+)");
  const PruningOptions& p = v->aggregation.pruning;
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.warmup_branches, 2);
  EXPECT_EQ(p.window_tokens, 16);
  EXPECT_EQ(p.percentile, 50.0);
  EXPECT_EQ(p.confidence_top_k, 3);
  EXPECT_TRUE(p.stop_when_decided);
  EXPECT_EQ(v->priority, 3);
  EXPECT_EQ(v->deadline, kNow + absl::Seconds(10) + absl::Nanoseconds(5));
  EXPECT_TRUE(v->stream_deltas);
}

TEST(ServerLimitsTest, ValidateNamesTheField) {
  EXPECT_TRUE(ServerLimits().Validate().ok());
  ServerLimits l;
  l.max_n = 0;
  EXPECT_THAT(std::string(l.Validate().message()), HasSubstr("max_n: must be in [1, "));
  l = ServerLimits();
  l.max_logprobs = 21;
  EXPECT_EQ(l.Validate().message(), "max_logprobs: must be in [0, 20], got 21");
  l = ServerLimits();
  l.queue_limit = 0;
  EXPECT_EQ(l.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidatedRequestTest, ScoreOnlyRunsNoBranchesAndMayFillTheContext) {
  GenerateRequest r = BaseRequest();
  r.set_n(4);
  r.set_prompt_logprobs(2);
  EXPECT_FALSE(ValidateRequest(r, Tiny(), ServerLimits(), kNow)->score_only);
  EXPECT_EQ(*ValidateRequest(r, Tiny(), ServerLimits(), kNow)->prompt_logprobs, 2);
  r.set_score_only(true);
  SetTokens(&r, 512);  // the whole context: nothing is generated
  auto v = ValidateRequest(r, Tiny(), ServerLimits(), kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->score_only);
  EXPECT_EQ(v->n, 0);
  EXPECT_EQ(v->stopping.max_tokens, 0);
  EXPECT_EQ(v->prompt_token_ids.size(), 512u);
}

}  // namespace
}  // namespace rami::api
