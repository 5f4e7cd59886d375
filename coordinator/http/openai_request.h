// OpenAiRequest: a POST /v1/completions or /v1/chat/completions body (OpenAI's JSON) turned
// into rami.v1.GenerateRequests — one per prompt of the batch — plus how the response must be
// shaped (stream, echo, log-probs). Only the translation happens here: every value is then
// validated by the same api::ValidateRequest as the gRPC API, so the rules and their messages
// are one. A field rami does not support is an error naming it, never silently ignored.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "rami/v1/inference.pb.h"

namespace rami::http {

enum class Endpoint { kCompletions, kChatCompletions };

struct OpenAiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                            // as the client named it
  std::vector<rami::v1::GenerateRequest> jobs;  // one per prompt, in order
  std::vector<std::string> prompt_texts;        // completions with a text prompt: for echo
  // Each prompt's first token id once validated (echo: it has no log-prob of its own).
  std::vector<int32_t> first_prompt_tokens;
  int n = 1;  // branches per prompt
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool echo = false;           // completions: the prompt before the completion
  // Log-probs to return: completions `logprobs` (top-n, may be 0), chat `logprobs: true` with
  // `top_logprobs`; -1 = none.
  int logprobs = -1;
  bool score_only = false;  // max_tokens 0 with echo: the prompt is scored, nothing generated
  // vLLM's extension: log-prob tokens as "token_id:N" instead of their text.
  bool tokens_as_ids = false;
};

// INVALID_ARGUMENT naming the field (unsupported fields included), NOT_FOUND for a model
// other than `served_model` (an empty `model` is accepted as the served one).
absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(Endpoint endpoint, std::string_view body,
                                                 const std::string& served_model);

// The chat body's `messages` (and `chat_template_kwargs`) into `r`: shared by the chat
// endpoint and /tokenize.
absl::Status ReadChatMessages(const nlohmann::json& body, rami::v1::GenerateRequest& r);

// A validation error of the translated GenerateRequest, with the fields named as the HTTP
// request names them ("sampling.temperature: …" → "temperature: …").
absl::Status WithHttpFieldNames(const absl::Status& status, Endpoint endpoint);

}  // namespace rami::http
