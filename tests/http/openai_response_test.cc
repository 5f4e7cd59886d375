// OpenAiResponder: a job's events (as the runner sends them) become OpenAI's bodies and
// server-sent-event chunks — choices per prompt and branch, finish reasons, usage, log-probs,
// the reasoning split and the `rami` object — and errors become OpenAI's error JSON.
#include "coordinator/http/openai_response.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rami::http {
namespace {

namespace v1 = rami::v1;
using json = nlohmann::json;
using ::testing::HasSubstr;

v1::GenerateEvent Accepted(int prompt_tokens) {
  v1::GenerateEvent e;
  e.set_job_id("job-9");
  e.mutable_accepted()->set_prompt_tokens(prompt_tokens);
  return e;
}

v1::GenerateEvent Delta(int branch, const std::string& text, int32_t token, float logprob) {
  v1::GenerateEvent e;
  e.mutable_delta()->set_branch(branch);
  e.mutable_delta()->set_text(text);
  v1::TokenLogprobs* lp = e.mutable_delta()->add_logprobs();
  lp->set_token_id(token);
  lp->set_logprob(logprob);
  lp->add_top()->set_token_id(token);
  lp->mutable_top(0)->set_logprob(logprob);
  return e;
}

v1::GenerateEvent Finished(int branch, v1::FinishReason reason) {
  v1::GenerateEvent e;
  e.mutable_branch_finished()->set_branch(branch);
  e.mutable_branch_finished()->set_reason(reason);
  return e;
}

v1::GenerateEvent Result(int generated) {
  v1::GenerateEvent e;
  v1::Result* r = e.mutable_result();
  r->set_answer("4");
  v1::Vote* v = r->add_votes();
  v->set_answer("4");
  v->set_count(2);
  r->mutable_usage()->set_generated_tokens(generated);
  r->mutable_usage()->set_compression_ratio(3.5);
  return e;
}

OpenAiRequest Request(Endpoint endpoint, int n, bool stream) {
  OpenAiRequest r;
  r.endpoint = endpoint;
  r.n = n;
  r.stream = stream;
  r.jobs.resize(1);
  r.prompt_texts = {"Q: "};
  return r;
}

ResponderOptions Options(bool reasoning = false) {
  ResponderOptions o;
  o.served_model = "tiny";
  o.id = "cmpl-job-9";
  o.created = 1700000000;
  o.split_reasoning = reasoning;
  o.prompt_opens_reasoning = {false};
  return o;
}

TEST(OpenAiResponder, ACompletionBodyHasEveryChoiceUsageAndVotes) {
  OpenAiRequest request = Request(Endpoint::kCompletions, 2, false);
  request.logprobs = 0;
  request.tokens_as_ids = true;
  OpenAiResponder r(request, Options());
  r.OnEvent(0, Accepted(3));
  r.OnEvent(0, Delta(1, "b", 66, -0.5f));
  r.OnEvent(0, Delta(0, "a", 65, -0.25f));
  r.OnEvent(0, Finished(0, v1::EOS));
  r.OnEvent(0, Finished(1, v1::MAX_TOKENS));
  EXPECT_FALSE(r.done());
  r.OnEvent(0, Result(2));
  ASSERT_TRUE(r.done());
  const json body = r.Body();
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], "tiny");
  ASSERT_EQ(body["choices"].size(), 2u);
  EXPECT_EQ(body["choices"][0]["text"], "a");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(body["choices"][1]["logprobs"]["tokens"][0], "token_id:66");
  EXPECT_FLOAT_EQ(body["choices"][1]["logprobs"]["token_logprobs"][0].get<float>(), -0.5f);
  EXPECT_TRUE(body["choices"][1]["logprobs"]["top_logprobs"][0].empty());  // logprobs: 0
  EXPECT_EQ(body["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(body["usage"]["completion_tokens"], 2);
  EXPECT_EQ(body["usage"]["total_tokens"], 5);
  EXPECT_EQ(body["rami"]["jobs"][0]["answer"], "4");
  EXPECT_EQ(body["rami"]["jobs"][0]["votes"][0]["count"], 2);
  EXPECT_EQ(body["rami"]["jobs"][0]["compression_ratio"], 3.5);
}

TEST(OpenAiResponder, ChatStreamsRoleThenContentThenFinishThenUsageAndDone) {
  OpenAiRequest request = Request(Endpoint::kChatCompletions, 1, true);
  request.include_usage = true;
  OpenAiResponder r(request, Options(/*reasoning=*/true));
  r.OnEvent(0, Accepted(3));
  std::vector<std::string> chunks;
  for (const char* piece : {"<thi", "nk>hm", "m</th", "ink>4"}) {
    for (std::string& c : r.OnEvent(0, Delta(0, piece, 1, -1))) chunks.push_back(c);
  }
  for (std::string& c : r.OnEvent(0, Finished(0, v1::EOS))) chunks.push_back(c);
  r.OnEvent(0, Result(4));
  for (std::string& c : r.FinalChunks()) chunks.push_back(c);
  ASSERT_GE(chunks.size(), 3u);
  EXPECT_EQ(chunks.back(), "data: [DONE]\n\n");
  std::string reasoning, content;
  bool role = false;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    ASSERT_EQ(chunks[i].substr(0, 6), "data: ");
    const json chunk = json::parse(chunks[i].substr(6));
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_TRUE(chunk.contains("usage"));  // null until the last chunk
    if (chunk["choices"].empty()) {
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 4);
      EXPECT_EQ(chunk["rami"]["jobs"][0]["answer"], "4");
      continue;
    }
    const json& d = chunk["choices"][0]["delta"];
    role |= d.value("role", "") == "assistant";
    reasoning += d.value("reasoning_content", "");
    content += d.value("content", "");
  }
  EXPECT_TRUE(role);
  EXPECT_EQ(reasoning, "hmm");
  EXPECT_EQ(content, "4");
}

TEST(OpenAiResponder, EchoPutsThePromptFirst) {
  OpenAiRequest request = Request(Endpoint::kCompletions, 1, false);
  request.echo = true;
  OpenAiResponder r(request, Options());
  r.OnEvent(0, Accepted(2));
  r.OnEvent(0, Delta(0, "4", 52, -0.1f));
  r.OnEvent(0, Finished(0, v1::EOS));
  r.OnEvent(0, Result(1));
  EXPECT_EQ(r.Body()["choices"][0]["text"], "Q: 4");
  EXPECT_TRUE(r.Body()["choices"][0]["logprobs"].is_null());
}

TEST(OpenAiResponder, AJobErrorIsReportedAsOpenAisErrorJson) {
  OpenAiResponder r(Request(Endpoint::kCompletions, 1, true), Options());
  v1::GenerateEvent e;
  e.mutable_error()->set_code(static_cast<int>(absl::StatusCode::kUnavailable));
  e.mutable_error()->set_message("no worker group is left");
  r.OnEvent(0, e);
  EXPECT_TRUE(r.done());
  EXPECT_EQ(r.error().code(), absl::StatusCode::kUnavailable);
  const std::vector<std::string> last = r.FinalChunks();
  ASSERT_EQ(last.size(), 2u);
  EXPECT_THAT(last[0], HasSubstr("no worker group is left"));
  EXPECT_EQ(HttpStatus(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatus(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatus(absl::StatusCode::kNotFound), 404);
  const json error = ErrorJson(absl::InvalidArgumentError("temperature: must be in [0, 2]"));
  EXPECT_EQ(error["error"]["param"], "temperature");
  EXPECT_EQ(error["error"]["type"], "BadRequestError");
}

}  // namespace
}  // namespace rami::http
