// OpenAiResponder: job events → OpenAI completion / chat completion bodies and chunks.
#include "coordinator/http/openai_response.h"

#include "absl/strings/str_cat.h"

namespace rami::http {
namespace {

using json = nlohmann::json;
namespace v1 = rami::v1;

const char* FinishReason(v1::FinishReason r) {
  switch (r) {
    case v1::MAX_TOKENS:
      return "length";
    case v1::ABORTED:
      return "abort";
    case v1::EOS:
    case v1::STOP_STRING:
    case v1::STOP_TOKEN:
    case v1::PRUNED:
    case v1::FINISH_REASON_UNSPECIFIED:
    case v1::FinishReason_INT_MIN_SENTINEL_DO_NOT_USE_:
    case v1::FinishReason_INT_MAX_SENTINEL_DO_NOT_USE_:
      return "stop";
  }
  return "stop";
}

json Bytes(const std::string& text) {
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

}  // namespace

int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

json ErrorJson(const absl::Status& status) {
  const int http = HttpStatus(status.code());
  const char* type = http == 404   ? "NotFoundError"
                     : http == 401 ? "AuthenticationError"
                     : http == 403 ? "PermissionDeniedError"
                     : http == 429 ? "RateLimitError"
                     : http < 500  ? "BadRequestError"
                                   : "InternalServerError";
  // "field: …" messages name the parameter, as OpenAI's `param` does.
  const std::string message(status.message());
  const size_t colon = message.find(": ");
  json param = nullptr;
  if (http == 400 && colon != std::string::npos && message.find(' ') >= colon) {
    param = message.substr(0, colon);
  }
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param},
            {"code", absl::StatusCodeToString(status.code())}}}};
}

OpenAiResponder::OpenAiResponder(const OpenAiRequest& request, ResponderOptions options)
    : request_(request), options_(std::move(options)) {
  jobs_.resize(request_.jobs.size());
  choices_.resize(request_.jobs.size() * request_.n);
  for (size_t j = 0; j < jobs_.size(); ++j) {
    const bool inside =
        j < options_.prompt_opens_reasoning.size() && options_.prompt_opens_reasoning[j];
    for (int b = 0; b < request_.n; ++b) {
      if (options_.split_reasoning) choices_[j * request_.n + b].splitter.emplace(inside);
    }
  }
}

std::string OpenAiResponder::TokenText(int32_t id) const {
  if (request_.tokens_as_ids || options_.tokenizer == nullptr) {
    return absl::StrCat("token_id:", id);
  }
  return options_.tokenizer->Decode({id});
}

std::string OpenAiResponder::Sse(const json& payload) const {
  return absl::StrCat("data: ", payload.dump(-1, ' ', false, json::error_handler_t::replace),
                      "\n\n");
}

json OpenAiResponder::ChunkJson(json choices) const {
  const bool chat = request_.endpoint == Endpoint::kChatCompletions;
  json chunk = {{"id", options_.id},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", options_.created},
                {"model", options_.served_model},
                {"choices", std::move(choices)}};
  if (request_.include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json OpenAiResponder::LogprobsJson(const std::vector<v1::TokenLogprobs>& tokens, size_t text_offset,
                                   bool with_prompt, int job) const {
  const int top_n = std::max(request_.logprobs, 0);
  if (request_.endpoint == Endpoint::kChatCompletions) {
    json content = json::array();
    for (const v1::TokenLogprobs& t : tokens) {
      const std::string text = TokenText(t.token_id());
      json top = json::array();
      for (int i = 0; i < std::min(top_n, t.top_size()); ++i) {
        const std::string alt = TokenText(t.top(i).token_id());
        top.push_back({{"token", alt}, {"logprob", t.top(i).logprob()}, {"bytes", Bytes(alt)}});
      }
      content.push_back({{"token", text},
                         {"logprob", t.logprob()},
                         {"bytes", Bytes(text)},
                         {"top_logprobs", std::move(top)}});
    }
    return {{"content", std::move(content)}};
  }
  json out = {{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  auto add = [&](int32_t id, json logprob, json top) {
    const std::string text = TokenText(id);
    out["tokens"].push_back(text);
    out["token_logprobs"].push_back(std::move(logprob));
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(text_offset);
    text_offset += text.size();
  };
  auto top_of = [&](const v1::TokenLogprobs& t) {
    json top = json::object();
    for (int i = 0; i < std::min(top_n, t.top_size()); ++i) {
      top[TokenText(t.top(i).token_id())] = t.top(i).logprob();
    }
    return top;
  };
  if (with_prompt) {  // echo: the prompt's tokens first, the first one without a log-prob
    const std::optional<v1::Result>& result = jobs_[job].result;
    if (static_cast<size_t>(job) < request_.first_prompt_tokens.size()) {
      add(request_.first_prompt_tokens[job], nullptr, nullptr);
    }
    if (result.has_value()) {
      for (const v1::TokenLogprobs& t : result->prompt_logprobs()) {
        add(t.token_id(), t.logprob(), top_of(t));
      }
    }
  }
  for (const v1::TokenLogprobs& t : tokens) add(t.token_id(), t.logprob(), top_of(t));
  return out;
}

std::vector<std::string> OpenAiResponder::OnEvent(int job, const v1::GenerateEvent& e) {
  Job& j = jobs_.at(job);
  if (j.id.empty()) j.id = e.job_id();
  switch (e.event_case()) {
    case v1::GenerateEvent::kAccepted:
      j.prompt_tokens = e.accepted().prompt_tokens();
      return {};
    case v1::GenerateEvent::kDelta:
      return OnDelta(job, e.delta());
    case v1::GenerateEvent::kBranchFinished:
      return OnBranchFinished(job, e.branch_finished());
    case v1::GenerateEvent::kResult:
      j.result = e.result();
      j.ended = true;
      return {};
    case v1::GenerateEvent::kError:
      if (error_.ok()) {
        error_ = absl::Status(static_cast<absl::StatusCode>(e.error().code()), e.error().message());
      }
      j.ended = true;
      return {};
    case v1::GenerateEvent::kProgress:
    case v1::GenerateEvent::EVENT_NOT_SET:
      return {};
  }
  return {};
}

std::vector<std::string> OpenAiResponder::OnDelta(int job, const v1::Delta& d) {
  if (d.branch() < 0 || d.branch() >= request_.n) return {};
  const int index = job * request_.n + d.branch();
  Choice& c = choices_[index];
  const size_t offset = c.text.size();
  const bool first = !c.role_sent;
  c.role_sent = true;
  std::vector<v1::TokenLogprobs> logprobs(d.logprobs().begin(), d.logprobs().end());
  c.logprobs.insert(c.logprobs.end(), logprobs.begin(), logprobs.end());
  ReasoningPiece piece;
  if (c.splitter.has_value()) {
    piece = c.splitter->Feed(d.text());
  } else {
    piece.content = d.text();
  }
  c.text += piece.content;
  c.reasoning += piece.reasoning;
  if (!request_.stream) return {};
  json choice = {{"index", index}, {"finish_reason", nullptr}};
  const json lp = request_.logprobs >= 0 ? LogprobsJson(logprobs, offset, false, job) : json();
  choice["logprobs"] = lp;
  if (request_.endpoint == Endpoint::kCompletions) {
    const std::string echo = first && request_.echo ? request_.prompt_texts[job] : "";
    if (piece.content.empty() && echo.empty() && logprobs.empty()) return {};
    choice["text"] = echo + piece.content;
  } else {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!piece.content.empty()) delta["content"] = piece.content;
    if (!piece.reasoning.empty()) delta["reasoning_content"] = piece.reasoning;
    if (delta.empty() && logprobs.empty()) return {};
    choice["delta"] = std::move(delta);
  }
  return {Sse(ChunkJson(json::array({std::move(choice)})))};
}

std::vector<std::string> OpenAiResponder::OnBranchFinished(int job, const v1::BranchFinished& f) {
  if (f.branch() < 0 || f.branch() >= request_.n) return {};
  const int index = job * request_.n + f.branch();
  Choice& c = choices_[index];
  c.finish_reason = FinishReason(f.reason());
  ReasoningPiece rest;
  if (c.splitter.has_value()) rest = c.splitter->Finish();
  c.text += rest.content;
  c.reasoning += rest.reasoning;
  if (!request_.stream) return {};
  json choice = {{"index", index}, {"finish_reason", *c.finish_reason}, {"logprobs", nullptr}};
  if (request_.endpoint == Endpoint::kCompletions) {
    choice["text"] = rest.content;
  } else {
    json delta = json::object();
    if (!c.role_sent) delta["role"] = "assistant";
    if (!rest.content.empty()) delta["content"] = rest.content;
    if (!rest.reasoning.empty()) delta["reasoning_content"] = rest.reasoning;
    choice["delta"] = std::move(delta);
  }
  c.role_sent = true;
  return {Sse(ChunkJson(json::array({std::move(choice)})))};
}

bool OpenAiResponder::done() const {
  for (const Job& j : jobs_) {
    if (!j.ended) return false;
  }
  return true;
}

json OpenAiResponder::UsageJson() const {
  int64_t prompt = 0, completion = 0, cached = 0;
  for (const Job& j : jobs_) {
    prompt += j.prompt_tokens;
    if (j.result.has_value()) {
      completion += j.result->usage().generated_tokens();
      cached += j.result->usage().cached_prompt_tokens();
    }
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

json OpenAiResponder::RamiJson() const {
  json jobs = json::array();
  for (const Job& j : jobs_) {
    json entry = {{"job_id", j.id}};
    if (j.result.has_value()) {
      const v1::Result& r = *j.result;
      json votes = json::array();
      for (const v1::Vote& v : r.votes()) {
        votes.push_back({{"answer", v.answer()}, {"count", v.count()}, {"weight", v.weight()}});
      }
      entry["answer"] = r.answer();
      entry["votes"] = std::move(votes);
      entry["compression_ratio"] = r.usage().compression_ratio();
      entry["peak_kv_bytes"] = r.usage().peak_kv_bytes();
      entry["worker_groups"] = r.usage().worker_groups();
    }
    jobs.push_back(std::move(entry));
  }
  return {{"jobs", std::move(jobs)}};
}

json OpenAiResponder::Body() const {
  const bool chat = request_.endpoint == Endpoint::kChatCompletions;
  json choices = json::array();
  for (size_t index = 0; index < choices_.size(); ++index) {
    const Choice& c = choices_[index];
    const int job = static_cast<int>(index / request_.n);
    json choice = {
        {"index", index},
        {"finish_reason", c.finish_reason.value_or(request_.score_only ? "length" : "stop")}};
    const bool with_prompt = request_.echo && request_.logprobs >= 0;
    choice["logprobs"] =
        request_.logprobs >= 0
            ? LogprobsJson(c.logprobs, request_.echo ? request_.prompt_texts[job].size() : 0,
                           with_prompt, job)
            : json();
    if (chat) {
      json message = {{"role", "assistant"}, {"content", c.text}};
      if (options_.split_reasoning) {
        message["reasoning_content"] = c.reasoning.empty() ? json() : json(c.reasoning);
      }
      choice["message"] = std::move(message);
    } else {
      choice["text"] = (request_.echo ? request_.prompt_texts[job] : "") + c.text;
    }
    choices.push_back(std::move(choice));
  }
  return {{"id", options_.id},
          {"object", chat ? "chat.completion" : "text_completion"},
          {"created", options_.created},
          {"model", options_.served_model},
          {"choices", std::move(choices)},
          {"usage", UsageJson()},
          {"rami", RamiJson()}};
}

std::vector<std::string> OpenAiResponder::FinalChunks() {
  std::vector<std::string> out;
  if (!error_.ok()) {
    out.push_back(Sse(ErrorJson(error_)));
  } else {
    json last = ChunkJson(json::array());
    last["rami"] = RamiJson();
    if (request_.include_usage) last["usage"] = UsageJson();
    out.push_back(Sse(last));
  }
  out.push_back("data: [DONE]\n\n");
  return out;
}

}  // namespace rami::http
