// OpenAiResponder: the events of a request's jobs (one per prompt) turned into OpenAI's
// response shapes — a completion or chat completion body, or its server-sent-event chunks —
// with choices indexed prompt × n + branch, finish reasons, usage, log-probs in each
// endpoint's format, the reasoning split of <think> sections, and rami's own `rami` object
// (each job's answer, votes and compression).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/http/openai_request.h"
#include "coordinator/http/reasoning.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "rami/v1/inference.pb.h"

namespace rami::http {

// How the responder renders: the request, the model's name and tokenizer (for log-prob token
// strings; may be null), and per job whether its prompt opened a <think> section (chat with a
// reasoning parser; empty = no reasoning split).
struct ResponderOptions {
  std::string served_model;
  const tokenizer::Tokenizer* tokenizer = nullptr;
  bool split_reasoning = false;
  std::vector<bool> prompt_opens_reasoning;  // per job
  std::string id;                            // "cmpl-…" / "chatcmpl-…"
  int64_t created = 0;                       // unix seconds
};

class OpenAiResponder {
 public:
  OpenAiResponder(const OpenAiRequest& request, ResponderOptions options);

  // Job `job`'s next event. When streaming: the chunks to send now ("data: …\n\n" each).
  std::vector<std::string> OnEvent(int job, const rami::v1::GenerateEvent& event);
  bool done() const;                                    // every job has had its terminal event
  const absl::Status& error() const { return error_; }  // the first job's error, if any

  nlohmann::json Body() const;             // non-streaming: the whole response
  std::vector<std::string> FinalChunks();  // streaming: usage, rami, then [DONE]

 private:
  struct Choice {
    std::string text;  // everything so far (completions) or content (chat)
    std::string reasoning;
    std::vector<rami::v1::TokenLogprobs> logprobs;
    std::optional<std::string> finish_reason;
    std::optional<ReasoningSplitter> splitter;
    bool role_sent = false;
  };
  struct Job {
    std::string id;
    int32_t prompt_tokens = 0;
    std::optional<rami::v1::Result> result;
    bool ended = false;
  };

  std::vector<std::string> OnDelta(int job, const rami::v1::Delta& delta);
  std::vector<std::string> OnBranchFinished(int job, const rami::v1::BranchFinished& f);
  nlohmann::json LogprobsJson(const std::vector<rami::v1::TokenLogprobs>& tokens,
                              size_t text_offset, bool with_prompt, int job) const;
  nlohmann::json ChunkJson(nlohmann::json choices) const;
  nlohmann::json UsageJson() const;
  nlohmann::json RamiJson() const;
  std::string TokenText(int32_t id) const;
  std::string Sse(const nlohmann::json& payload) const;

  OpenAiRequest request_;
  ResponderOptions options_;
  std::vector<Job> jobs_;
  std::vector<Choice> choices_;  // [jobs × n]
  absl::Status error_;
};

// OpenAI's error body: {"error": {"message", "type", "param", "code"}}, and the HTTP status of
// an absl code (400, 404, 429, 503, 500, …).
nlohmann::json ErrorJson(const absl::Status& status);
int HttpStatus(absl::StatusCode code);

}  // namespace rami::http
