// ValidateRequest: a table of bad requests (each: the edit to a valid request, the expected
// code, a piece of the message), then good requests with every default resolved.
#include "coordinator/api/request_validation.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/test_models.h"

namespace rami::api {
namespace {

using rami::v1::GenerateRequest;
using testing::BaseRequest;
using ::testing::HasSubstr;
using testing::kNow;
using testing::SetTokens;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

void AddMessage(GenerateRequest* r, const std::string& role, const std::string& content) {
  rami::v1::ChatMessage* m = r->mutable_messages()->add_messages();
  m->set_role(role);
  m->set_content(content);
}

enum class Model { kTiny, kQwen, kQwenNoTemplate };

struct BadCase {
  const char* name;
  std::function<void(GenerateRequest*)> edit;
  absl::StatusCode code;
  std::string message;  // a substring of the error
  Model model = Model::kTiny;
  std::function<void(ServerLimits*)> limits = nullptr;
};

std::vector<BadCase> BadCases() {
  using absl::StatusCode;
  const StatusCode kInvalid = StatusCode::kInvalidArgument;
  const StatusCode kPrecondition = StatusCode::kFailedPrecondition;
  auto* sampling = +[](GenerateRequest* r) { return r->mutable_sampling(); };
  auto* stopping = +[](GenerateRequest* r) { return r->mutable_stopping(); };
  auto* pruning = +[](GenerateRequest* r) { return r->mutable_aggregation()->mutable_pruning(); };
  return {
      {"no input", [](auto* r) { r->clear_input(); }, kInvalid, "input: empty"},
      {"empty prompt", [](auto* r) { r->set_prompt(""); }, kInvalid, "prompt: empty"},
      {"empty token ids", [](auto* r) { r->mutable_token_ids()->clear_ids(); }, kInvalid,
       "token_ids.ids: empty"},
      {"token id past the vocabulary", [](auto* r) { r->mutable_token_ids()->add_ids(300); },
       kInvalid, "token_ids.ids[3]: 300 is outside the vocabulary [0, 256)"},
      {"negative token id", [](auto* r) { r->mutable_token_ids()->set_ids(0, -1); }, kInvalid,
       "token_ids.ids[0]: -1 is outside the vocabulary [0, 256)"},
      {"unknown model", [](auto* r) { r->set_model("x"); }, kInvalid,
       "model: unknown model \"x\" (serving \"qwen3_dms\")"},
      {"negative n", [](auto* r) { r->set_n(-1); }, kInvalid, "n: must be in [1, 256], got -1"},
      {"n over the cap", [](auto* r) { r->set_n(257); }, kInvalid,
       "n: must be in [1, 256], got 257"},
      {"n over a lower cap", [](auto* r) { r->set_n(9); }, kInvalid, "n: must be in [1, 8], got 9",
       Model::kTiny, [](ServerLimits* l) { l->max_n = 8; }},
      {"nan temperature", [=](auto* r) { sampling(r)->set_temperature(kNan); }, kInvalid,
       "sampling.temperature: must be finite and >= 0, got nan"},
      {"negative temperature", [=](auto* r) { sampling(r)->set_temperature(-0.5f); }, kInvalid,
       "sampling.temperature: must be finite and >= 0, got -0.5"},
      {"infinite temperature", [=](auto* r) { sampling(r)->set_temperature(kInf); }, kInvalid,
       "sampling.temperature: must be finite and >= 0, got inf"},
      {"top_p above 1", [=](auto* r) { sampling(r)->set_top_p(1.5f); }, kInvalid,
       "sampling.top_p: must be in (0, 1], got 1.5"},
      {"top_p 0", [=](auto* r) { sampling(r)->set_top_p(0); }, kInvalid,
       "sampling.top_p: must be in (0, 1], got 0"},
      {"nan top_p", [=](auto* r) { sampling(r)->set_top_p(kNan); }, kInvalid,
       "sampling.top_p: must be in (0, 1], got nan"},
      {"negative top_k", [=](auto* r) { sampling(r)->set_top_k(-1); }, kInvalid,
       "sampling.top_k: must be >= 0 (0 = off), got -1"},
      {"min_p above 1", [=](auto* r) { sampling(r)->set_min_p(1.5f); }, kInvalid,
       "sampling.min_p: must be in [0, 1], got 1.5"},
      {"nan min_p", [=](auto* r) { sampling(r)->set_min_p(kNan); }, kInvalid,
       "sampling.min_p: must be in [0, 1], got nan"},
      {"too many stop strings",
       [=](auto* r) {
         for (int i = 0; i < 9; ++i) stopping(r)->add_stop("s" + std::to_string(i));
       },
       kInvalid, "stopping.stop: at most 8 strings, got 9"},
      {"long stop string",
       [=](auto* r) {
         for (const char* s : {"a", "b"}) stopping(r)->add_stop(s);
         stopping(r)->add_stop(std::string(257, 'x'));
       },
       kInvalid, "stopping.stop[2]: at most 256 bytes, got 257"},
      {"empty stop string", [=](auto* r) { stopping(r)->add_stop(""); }, kInvalid,
       "stopping.stop[0]: empty"},
      {"stop string not UTF-8",
       [=](auto* r) {
         stopping(r)->add_stop("ok");
         stopping(r)->add_stop("\xff\xfe");
       },
       kInvalid, "stopping.stop[1]: not valid UTF-8"},
      {"stop token id past the vocabulary",
       [=](auto* r) {
         stopping(r)->add_stop_token_ids(5);
         stopping(r)->add_stop_token_ids(256);
       },
       kInvalid, "stopping.stop_token_ids[1]: 256 is outside the vocabulary [0, 256)"},
      {"negative max_tokens", [=](auto* r) { stopping(r)->set_max_tokens(-1); }, kInvalid,
       "stopping.max_tokens: must be >= 0 (0 = the server's default, 256), got -1"},
      {"max_tokens beyond the context", [=](auto* r) { stopping(r)->set_max_tokens(510); },
       kInvalid,
       "stopping.max_tokens: prompt (3 tokens) + max_tokens (510) exceeds the context (512)"},
      {"max_tokens beyond a server context cap", [=](auto* r) { stopping(r)->set_max_tokens(98); },
       kInvalid,
       "stopping.max_tokens: prompt (3 tokens) + max_tokens (98) exceeds the context (100)",
       Model::kTiny, [](ServerLimits* l) { l->max_context = 100; }},
      {"prompt fills the context", [](auto* r) { SetTokens(r, 512); }, kInvalid,
       "input: the prompt has 512 tokens; the context (512) leaves no room to generate"},
      {"prompt over max_prompt_tokens", [](auto* r) { SetTokens(r, 5); }, kInvalid,
       "input: the prompt has 5 tokens, more than max_prompt_tokens (4)", Model::kTiny,
       [](ServerLimits* l) { l->max_prompt_tokens = 4; }},
      {"logprobs over 20", [](auto* r) { r->set_logprobs(21); }, kInvalid,
       "logprobs: must be in [0, 20], got 21"},
      {"a 3 MB model name is quoted short",
       [](auto* r) { r->set_model(std::string(3 << 20, 'm')); }, kInvalid,
       "model: unknown model \"mmmmmmmmmm"},
      {"prompt_logprobs over 20", [](auto* r) { r->set_prompt_logprobs(21); }, kInvalid,
       "prompt_logprobs: must be in [0, 20], got 21"},
      {"negative prompt_logprobs", [](auto* r) { r->set_prompt_logprobs(-1); }, kInvalid,
       "prompt_logprobs: must be in [0, 20], got -1"},
      {"score_only without prompt_logprobs", [](auto* r) { r->set_score_only(true); }, kInvalid,
       "score_only: needs prompt_logprobs"},
      {"scored prompt over the context",
       [](auto* r) {
         SetTokens(r, 513);
         r->set_prompt_logprobs(0);
         r->set_score_only(true);
       },
       kInvalid, "input: the prompt has 513 tokens, more than the context (512)"},
      {"negative logprobs", [](auto* r) { r->set_logprobs(-1); }, kInvalid,
       "logprobs: must be in [0, 20], got -1"},
      {"unknown policy",
       [](auto* r) {
         r->mutable_aggregation()->set_policy(static_cast<rami::v1::AggregationPolicy>(17));
       },
       kInvalid, "aggregation.policy: unknown value 17"},
      {"regex with an open group",
       [](auto* r) { r->mutable_aggregation()->mutable_extractor()->set_regex("answer: (\\d+"); },
       kInvalid, "aggregation.extractor.regex: regex 'answer: (\\d+' does not compile at offset"},
      {"regex with a bad class",
       [](auto* r) { r->mutable_aggregation()->mutable_extractor()->set_regex("[z-a]"); }, kInvalid,
       "aggregation.extractor.regex: "},
      {"regex too long",
       [](auto* r) {
         r->mutable_aggregation()->mutable_extractor()->set_regex(std::string(5000, 'a'));
       },
       kInvalid, "aggregation.extractor.regex: at most 4096 bytes, got 5000"},
      {"negative warm-up", [=](auto* r) { pruning(r)->set_warmup_branches(-1); }, kInvalid,
       "aggregation.pruning.warmup_branches: must be in [1, 256], got -1"},
      {"window past the context", [=](auto* r) { pruning(r)->set_window_tokens(100000); }, kInvalid,
       "aggregation.pruning.window_tokens: must be in [1, 512], got 100000"},
      {"percentile over 100", [=](auto* r) { pruning(r)->set_percentile(150); }, kInvalid,
       "aggregation.pruning.percentile: must be in [0, 100], got 150"},
      {"nan percentile", [=](auto* r) { pruning(r)->set_percentile(std::nan("")); }, kInvalid,
       "aggregation.pruning.percentile: must be in [0, 100], got nan"},
      {"confidence top-k over 20", [=](auto* r) { pruning(r)->set_confidence_top_k(21); }, kInvalid,
       "aggregation.pruning.confidence_top_k: must be in [1, 20], got 21"},
      {"stop_when_decided without a vote",
       [=](auto* r) {
         r->mutable_aggregation()->set_policy(rami::v1::BEST_LOGPROB);
         pruning(r)->set_enabled(true);
         pruning(r)->set_stop_when_decided(true);
       },
       kInvalid, "aggregation.pruning.stop_when_decided: needs policy MAJORITY_VOTE"},
      {"deadline in the past", [](auto* r) { r->mutable_deadline()->set_seconds(1'600'000'000); },
       kInvalid,
       "deadline: in the past (2020-09-13T12:26:40+00:00, now 2023-11-14T22:13:20+00:00)"},
      {"deadline now", [](auto* r) { r->mutable_deadline()->set_seconds(1'700'000'000); }, kInvalid,
       "deadline: in the past"},
      {"deadline with bad nanos", [](auto* r) { r->mutable_deadline()->set_nanos(-1); }, kInvalid,
       "deadline: not a valid timestamp"},
      {"prompt to a model without a tokenizer", [](auto* r) { r->set_prompt("hi"); }, kPrecondition,
       "prompt: model \"qwen3_dms\" has no tokenizer; send token_ids"},
      {"messages to a model without a tokenizer", [](auto* r) { AddMessage(r, "user", "hi"); },
       kPrecondition, "messages: model \"qwen3_dms\" has no tokenizer"},
      {"kwargs without messages",
       [](auto* r) { (*r->mutable_chat_template_kwargs())["enable_thinking"] = "false"; }, kInvalid,
       "chat_template_kwargs: only used with messages input"},
      {"messages to a model without a chat template", [](auto* r) { AddMessage(r, "user", "hi"); },
       kPrecondition, "messages: model \"qwen_no_template\" has no chat template",
       Model::kQwenNoTemplate},
      {"empty messages", [](auto* r) { r->mutable_messages(); }, kInvalid, "messages: empty",
       Model::kQwen},
      {"message without a role",
       [](auto* r) {
         AddMessage(r, "system", "Be brief.");
         AddMessage(r, "", "hi");
       },
       kInvalid, "messages.messages[1].role: empty", Model::kQwen},
      {"kwarg that is not JSON",
       [](auto* r) {
         AddMessage(r, "user", "hi");
         (*r->mutable_chat_template_kwargs())["enable_thinking"] = "False";
       },
       kInvalid, "chat_template_kwargs[\"enable_thinking\"]: must be a JSON value", Model::kQwen},
      {"reserved kwarg",
       [](auto* r) {
         AddMessage(r, "user", "hi");
         (*r->mutable_chat_template_kwargs())["messages"] = "[]";
       },
       kInvalid, "chat_template_kwargs[\"messages\"]: reserved template variable", Model::kQwen},
      {"deeply nested kwarg",
       [](auto* r) {
         AddMessage(r, "user", "hi");
         (*r->mutable_chat_template_kwargs())["x"] = std::string(100000, '[');
       },
       kInvalid, "chat_template_kwargs[\"x\"]: nested deeper than 64", Model::kQwen},
      {"prompt not UTF-8", [](auto* r) { r->set_prompt("caf\xc3"); }, kInvalid,
       "prompt: text to encode is not valid UTF-8", Model::kQwen},
      {"chat prompt beyond the context",
       [](auto* r) { AddMessage(r, "user", std::string(200, 'x') + " " + std::string(300, 'y')); },
       kInvalid, "input: the prompt has 508 tokens; the context (128) leaves no room",
       Model::kQwen},
      {"cache salt too long", [](auto* r) { r->set_cache_salt(std::string(257, 's')); }, kInvalid,
       "cache_salt: at most 256 bytes, got 257"},
      {"too many cache boundaries",
       [](auto* r) {
         for (int i = 0; i < 9; ++i) r->add_cache_boundaries(1);
       },
       kInvalid, "cache_boundaries: at most 8 entries, got 9"},
      {"cache boundary 0", [](auto* r) { r->add_cache_boundaries(0); }, kInvalid,
       "cache_boundaries[0] (a prompt token offset): must be in [1, 3], got 0"},
      {"cache boundary past the prompt",
       [](auto* r) {
         r->add_cache_boundaries(2);
         r->add_cache_boundaries(4);
       },
       kInvalid, "cache_boundaries[1] (a prompt token offset): must be in [1, 3], got 4"},
  };
}

class RequestValidationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    qwen_ = new ModelFrontEnd(testing::LoadOrDie(testing::QwenModelDir()));
    auto tok =
        tokenizer::Tokenizer::FromDirectory(rami::testing::GoldenTokenizerDir() + "/data/qwen2");
    ASSERT_TRUE(tok.ok()) << tok.status();
    qwen_no_template_ = new ModelFrontEnd(ModelSpec{"qwen_no_template", 1216, 128, {1202}, {1202}},
                                          std::move(*tok));
  }
  static void TearDownTestSuite() {
    delete qwen_;
    delete qwen_no_template_;
  }
  const ModelFrontEnd& Get(Model m) const {
    switch (m) {
      case Model::kTiny:
        return tiny_;
      case Model::kQwen:
        return *qwen_;
      case Model::kQwenNoTemplate:
        return *qwen_no_template_;
    }
    return tiny_;
  }

  ModelFrontEnd tiny_ = testing::TinyModel();
  static ModelFrontEnd* qwen_;
  static ModelFrontEnd* qwen_no_template_;
};

ModelFrontEnd* RequestValidationTest::qwen_ = nullptr;
ModelFrontEnd* RequestValidationTest::qwen_no_template_ = nullptr;

TEST_F(RequestValidationTest, BadRequestsAreRejectedNamingTheField) {
  const std::vector<BadCase> cases = BadCases();
  EXPECT_GE(cases.size(), 30u);
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    ServerLimits limits;
    if (c.limits) c.limits(&limits);
    ASSERT_TRUE(limits.Validate().ok());
    GenerateRequest request = BaseRequest();
    c.edit(&request);
    absl::StatusOr<ValidatedRequest> v = ValidateRequest(request, Get(c.model), limits, kNow);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), c.code) << v.status();
    EXPECT_THAT(std::string(v.status().message()), HasSubstr(c.message));
    // Client strings are quoted short: the error stays small whatever the input.
    EXPECT_LT(v.status().message().size(), 1024u) << c.name;
  }
  // Validation keeps no state: after all of them, a normal request still passes everywhere.
  for (Model m : {Model::kTiny, Model::kQwen, Model::kQwenNoTemplate}) {
    EXPECT_TRUE(ValidateRequest(BaseRequest(), Get(m), ServerLimits(), kNow).ok());
  }
}

TEST_F(RequestValidationTest, PrefixCacheFieldsBecomeSnapshotPoints) {
  GenerateRequest r = BaseRequest();
  SetTokens(&r, 40);
  for (int b : {30, 12, 40, 12}) r.add_cache_boundaries(b);
  r.set_cache_salt("tenant a");
  absl::StatusOr<ValidatedRequest> v = ValidateRequest(r, tiny_, ServerLimits(), kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->prefix_cache);
  EXPECT_EQ(v->cache_salt, "tenant a");
  // Sorted, once each; the whole prompt (40) needs no point (the kept root caches it).
  EXPECT_EQ(v->snapshot_points, (std::vector<int64_t>{12, 30}));
  r.set_skip_prefix_cache(true);
  EXPECT_FALSE(ValidateRequest(r, tiny_, ServerLimits(), kNow)->prefix_cache);
}

// The chat's part before its last user turn is a snapshot point: the system prompt and the
// earlier turns (Qwen's real template, which renders an assistant turn differently once a
// user turn follows it) up to where the last question starts.
TEST_F(RequestValidationTest, AChatIsCachedUpToItsLastUserTurn) {
  GenerateRequest r;
  AddMessage(&r, "system", "You are terse.");
  AddMessage(&r, "user", "1+1?");
  AddMessage(&r, "assistant", "2");
  AddMessage(&r, "user", "2+2?");
  ServerLimits limits;
  absl::StatusOr<ValidatedRequest> v = ValidateRequest(r, *qwen_, limits, kNow);
  ASSERT_TRUE(v.ok()) << v.status();
  GenerateRequest head;
  AddMessage(&head, "system", "You are terse.");
  AddMessage(&head, "user", "1+1?");
  AddMessage(&head, "assistant", "2");
  absl::StatusOr<std::vector<int32_t>> whole = qwen_->InputIds(r);
  ASSERT_TRUE(whole.ok());
  ASSERT_EQ(v->snapshot_points.size(), 1u);
  const int64_t point = v->snapshot_points[0];
  ASSERT_GT(point, 0);
  ASSERT_LT(point, static_cast<int64_t>(whole->size()));
  // The tokens up to the point decode to the three first turns as the template closes them:
  // the last user turn starts right after.
  const std::string text =
      qwen_->tokenizer()->Decode(std::vector<int32_t>(whole->begin(), whole->begin() + point));
  EXPECT_THAT(text, HasSubstr("You are terse."));
  EXPECT_THAT(text, HasSubstr("1+1?"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("2+2?")));
  const std::string rest =
      qwen_->tokenizer()->Decode(std::vector<int32_t>(whole->begin() + point, whole->end()));
  EXPECT_THAT(rest, HasSubstr("2+2?"));
  // One user turn only: nothing before it to share.
  GenerateRequest single;
  AddMessage(&single, "user", "2+2?");
  EXPECT_TRUE(ValidateRequest(single, *qwen_, limits, kNow)->snapshot_points.empty());
}

}  // namespace
}  // namespace rami::api
