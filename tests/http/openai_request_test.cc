// OpenAI request bodies → GenerateRequests: each field where rami's API has it, batches of
// prompts, echo and scoring, and every unsupported or unknown field refused by name.
#include "coordinator/http/openai_request.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rami::http {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<OpenAiRequest> Completions(const std::string& body) {
  return ParseOpenAiRequest(Endpoint::kCompletions, body, "tiny");
}

absl::StatusOr<OpenAiRequest> Chat(const std::string& body) {
  return ParseOpenAiRequest(Endpoint::kChatCompletions, body, "tiny");
}

TEST(OpenAiRequest, CompletionFieldsLandInTheGenerateRequest) {
  absl::StatusOr<OpenAiRequest> r = Completions(R"j({
      "model": "tiny", "prompt": "Hi", "n": 4, "max_tokens": 9, "temperature": 0.5,
      "top_p": 0.9, "seed": 7, "stop": "\n", "logprobs": 3, "stream": true,
      "stream_options": {"include_usage": true}, "top_k": 20, "min_p": 0.05,
      "ignore_eos": true, "stop_token_ids": [5, 6], "priority": 2,
      "aggregation": "weighted_vote", "answer_regex": "(\\d+)",
      "early_pruning": {"warmup_branches": 2, "stop_when_decided": true}, "user": "u1"})j");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->jobs.size(), 1u);
  const rami::v1::GenerateRequest& g = r->jobs[0];
  EXPECT_EQ(g.prompt(), "Hi");
  EXPECT_EQ(g.n(), 4);
  EXPECT_EQ(g.stopping().max_tokens(), 9);
  EXPECT_FLOAT_EQ(g.sampling().temperature(), 0.5f);
  EXPECT_FLOAT_EQ(g.sampling().top_p(), 0.9f);
  EXPECT_EQ(g.sampling().top_k(), 20);
  EXPECT_FLOAT_EQ(g.sampling().min_p(), 0.05f);
  EXPECT_EQ(g.sampling().seed(), 7u);
  EXPECT_THAT(g.stopping().stop(), ElementsAre("\n"));
  EXPECT_THAT(g.stopping().stop_token_ids(), ElementsAre(5, 6));
  EXPECT_TRUE(g.stopping().ignore_eos());
  EXPECT_EQ(g.logprobs(), 3);
  EXPECT_EQ(g.priority(), 2);
  EXPECT_EQ(g.aggregation().policy(), rami::v1::WEIGHTED_VOTE);
  EXPECT_EQ(g.aggregation().extractor().regex(), "(\\d+)");
  EXPECT_TRUE(g.aggregation().pruning().enabled());
  EXPECT_EQ(g.aggregation().pruning().warmup_branches(), 2);
  EXPECT_TRUE(g.aggregation().pruning().stop_when_decided());
  EXPECT_TRUE(g.stream_deltas());
  EXPECT_FALSE(g.has_prompt_logprobs());
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->logprobs, 3);
}

TEST(OpenAiRequest, APromptListIsABatchOfJobs) {
  absl::StatusOr<OpenAiRequest> r = Completions(R"j({"prompt": ["a", [1, 2], "b"], "n": 2})j");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->jobs.size(), 3u);
  EXPECT_EQ(r->jobs[0].prompt(), "a");
  EXPECT_THAT(r->jobs[1].token_ids().ids(), ElementsAre(1, 2));
  EXPECT_EQ(r->jobs[2].n(), 2);
  EXPECT_THAT(r->prompt_texts, ElementsAre("a", "", "b"));
  absl::StatusOr<OpenAiRequest> ids = Completions(R"j({"prompt": [7, 8, 9]})j");
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->jobs.size(), 1u);  // one prompt of token ids, not three
  EXPECT_THAT(ids->jobs[0].token_ids().ids(), ElementsAre(7, 8, 9));
}

TEST(OpenAiRequest, EchoScoresThePromptAndMaxTokensZeroOnlyScores) {
  absl::StatusOr<OpenAiRequest> r =
      Completions(R"j({"prompt": "x", "echo": true, "logprobs": 0, "max_tokens": 2})j");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->echo);
  EXPECT_EQ(r->jobs[0].prompt_logprobs(), 0);
  EXPECT_EQ(r->jobs[0].logprobs(), 1);  // the token's own log-prob comes with one alternative
  EXPECT_FALSE(r->jobs[0].score_only());
  r = Completions(R"j({"prompt": "x", "echo": true, "logprobs": 1, "max_tokens": 0})j");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->score_only);
  EXPECT_TRUE(r->jobs[0].score_only());
  EXPECT_EQ(r->jobs[0].prompt_logprobs(), 1);
  EXPECT_THAT(std::string(Completions(R"j({"prompt": "x", "max_tokens": 0})j").status().message()),
              HasSubstr("max_tokens: 0 is only accepted with echo"));
}

TEST(OpenAiRequest, ChatMessagesAndTheirOptions) {
  absl::StatusOr<OpenAiRequest> r = Chat(R"j({
      "messages": [{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": [{"type": "text", "text": "2+"},
                                                {"type": "text", "text": "2?"}]}],
      "max_completion_tokens": 5, "logprobs": true, "top_logprobs": 2,
      "chat_template_kwargs": {"enable_thinking": false}})j");
  ASSERT_TRUE(r.ok()) << r.status();
  const rami::v1::GenerateRequest& g = r->jobs[0];
  ASSERT_EQ(g.messages().messages_size(), 2);
  EXPECT_EQ(g.messages().messages(1).content(), "2+2?");
  EXPECT_EQ(g.stopping().max_tokens(), 5);
  EXPECT_EQ(r->logprobs, 2);
  EXPECT_EQ(g.chat_template_kwargs().at("enable_thinking"), "false");
}

TEST(OpenAiRequest, UnsupportedAndUnknownFieldsAreNamed) {
  const std::pair<const char*, const char*> cases[] = {
      {R"j({"prompt": "x", "frequency_penalty": 0.5})j", "frequency_penalty: not supported"},
      {R"j({"prompt": "x", "presence_penalty": 1})j", "presence_penalty: not supported"},
      {R"j({"prompt": "x", "logit_bias": {"5": 10}})j", "logit_bias: not supported"},
      {R"j({"prompt": "x", "best_of": 3})j", "best_of: not supported"},
      {R"j({"prompt": "x", "suffix": "end"})j", "suffix: not supported"},
      {R"j({"prompt": "x", "response_format": {"type": "json_object"}})j", "response_format"},
      {R"j({"prompt": "x", "tools": [{"type": "function"}]})j", "tools: not supported"},
      {R"j({"prompt": "x", "functions": []})j", "functions: not supported"},
      {R"j({"prompt": "x", "bogus": 1})j", "bogus: unknown field"},
      {R"j({"prompt": "x", "messages": []})j", "messages: unknown field"},
      {R"j({"prompt": "x", "temperature": "hot"})j", "temperature: expected a number"},
      {R"j({"prompt": "x", "n": 1e30})j", "n: expected an integer"},
      {R"j({"prompt": "x", "n": 18446744073709551615})j", "n: expected an integer"},
      {R"j({"prompt": "x", "early_pruning": {"window_tokens": 18446744073709551615}})j",
       "early_pruning.window_tokens: expected an integer"},
      {R"j({"prompt": [18446744073709551615]})j", "prompt[0]: expected a token id"},
      {R"j({"prompt": "x", "aggregation": "mode"})j", "aggregation: expected none"},
      {R"j({"prompt": "x", "early_pruning": {"warmup": 1}})j", "early_pruning.warmup: unknown"},
      {R"j({"prompt": "x", "stream_options": {"include_usage": true}})j", "only with stream"},
      {R"j({"prompt": {"a": 1}})j", "prompt: expected a string"},
      {R"j({"prompt": [1, "a"]})j", "prompt[1]: expected a token id"},
      {R"j({"n": 2})j", "prompt: required"},
      {R"j(not json)j", "not a JSON object"},
  };
  for (const auto& [body, message] : cases) {
    absl::StatusOr<OpenAiRequest> r = Completions(body);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << body;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(message)) << body;
  }
  // The values that change nothing are accepted.
  EXPECT_TRUE(Completions(R"j({"prompt": "x", "frequency_penalty": 0, "logit_bias": {},
                              "best_of": 1, "suffix": null, "response_format": {"type": "text"}})j")
                  .ok());
  EXPECT_THAT(std::string(Chat(R"j({"messages": [{"role": "user", "content": "x", "name": "a"}]})j")
                              .status()
                              .message()),
              HasSubstr("messages[0].name: not supported"));
  EXPECT_THAT(std::string(Chat(R"j({"messages": [{"role": "user", "content": "x"}],
                                   "top_logprobs": 2})j")
                              .status()
                              .message()),
              HasSubstr("top_logprobs: needs logprobs: true"));
}

TEST(OpenAiRequest, AnotherModelIsNotFound) {
  absl::StatusOr<OpenAiRequest> r = Completions(R"j({"model": "gpt-4", "prompt": "x"})j");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("`gpt-4` does not exist"));
  EXPECT_TRUE(Completions(R"j({"prompt": "x"})j").ok());  // no model: the served one
}

TEST(OpenAiRequest, ValidationMessagesUseTheHttpFieldNames) {
  const auto rename = [](const char* message) {
    return std::string(
        WithHttpFieldNames(absl::InvalidArgumentError(message), Endpoint::kCompletions).message());
  };
  EXPECT_EQ(rename("sampling.temperature: must be in [0, 2], got -1"),
            "temperature: must be in [0, 2], got -1");
  EXPECT_EQ(rename("stopping.stop[1]: not valid UTF-8"), "stop[1]: not valid UTF-8");
  EXPECT_EQ(rename("aggregation.extractor.regex: bad"), "answer_regex: bad");
  EXPECT_EQ(rename("aggregation.pruning.percentile: bad"), "early_pruning.percentile: bad");
  EXPECT_EQ(rename("token_ids.ids[0]: 300 is outside"), "prompt[0]: 300 is outside");
  EXPECT_EQ(rename("n: must be in [1, 256], got 300"), "n: must be in [1, 256], got 300");
}

}  // namespace
}  // namespace rami::http
