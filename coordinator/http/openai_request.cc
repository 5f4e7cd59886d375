// OpenAI request JSON → GenerateRequests: field by field, strict about what rami cannot do.
#include "coordinator/http/openai_request.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace rami::http {
namespace {

using json = nlohmann::json;
namespace v1 = rami::v1;

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

// A JSON integer that fits int32 (an unsigned one past INT64_MAX would read as negative).
bool IsInt32(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(INT32_MAX);
  return v.is_number_integer() && v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX;
}

// Fields that change what OpenAI would generate and that rami does not implement: accepted
// only with the value that means "off".
absl::Status CheckUnsupported(const json& body) {
  struct Neutral {
    const char* field;
    json off;  // the value that changes nothing (null always does)
  };
  const Neutral neutral[] = {
      {"frequency_penalty", 0},
      {"presence_penalty", 0},
      {"repetition_penalty", 1},
      {"logit_bias", json::object()},
      {"best_of", 1},
      {"suffix", ""},
      {"response_format", {{"type", "text"}}},
      {"tool_choice", "none"},
      {"tools", json::array()},
      {"parallel_tool_calls", false},
  };
  for (const Neutral& n : neutral) {
    if (!body.contains(n.field) || body[n.field].is_null() || body[n.field] == n.off) continue;
    return Invalid(absl::StrCat(n.field, ": not supported by rami (only ", n.off.dump(),
                                " or null is accepted)"));
  }
  for (const char* field :
       {"functions", "function_call", "audio", "modalities", "prediction", "reasoning_effort",
        "web_search_options", "service_tier", "store", "metadata"}) {
    if (body.contains(field) && !body[field].is_null()) {
      return Invalid(absl::StrCat(field, ": not supported by rami"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckKnownFields(const json& body, Endpoint endpoint) {
  static const std::set<std::string> kCommon = {
      "model", "n", "max_tokens", "temperature", "top_p", "seed", "stop", "stream",
      "stream_options", "user", "logprobs",
      // rami's own (docs/api.md)
      "top_k", "min_p", "ignore_eos", "stop_token_ids", "priority", "aggregation", "answer_regex",
      "early_pruning", "deadline_seconds", "return_tokens_as_token_ids", "cache_salt",
      "skip_prefix_cache",
      // unsupported: CheckUnsupported names them
      "frequency_penalty", "presence_penalty", "repetition_penalty", "logit_bias", "best_of",
      "suffix", "response_format", "tool_choice", "tools", "parallel_tool_calls", "functions",
      "function_call", "audio", "modalities", "prediction", "reasoning_effort",
      "web_search_options", "service_tier", "store", "metadata"};
  static const std::set<std::string> kCompletions = {"prompt", "echo"};
  static const std::set<std::string> kChat = {"messages", "max_completion_tokens", "top_logprobs",
                                              "chat_template_kwargs"};
  const std::set<std::string>& own = endpoint == Endpoint::kCompletions ? kCompletions : kChat;
  for (const auto& [key, value] : body.items()) {
    if (!kCommon.count(key) && !own.count(key)) {
      return Invalid(absl::StrCat(key, ": unknown field"));
    }
  }
  return absl::OkStatus();
}

// Typed readers: absent and null read as nullopt; a wrong type is an error naming the field.
absl::StatusOr<std::optional<int64_t>> Int(const json& body, const char* field) {
  if (!body.contains(field) || body[field].is_null()) return std::nullopt;
  const json& v = body[field];
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX)) {
    return Invalid(absl::StrCat(field, ": expected an integer"));
  }
  return v.get<int64_t>();
}

absl::StatusOr<std::optional<double>> Number(const json& body, const char* field) {
  if (!body.contains(field) || body[field].is_null()) return std::nullopt;
  if (!body[field].is_number()) return Invalid(absl::StrCat(field, ": expected a number"));
  return body[field].get<double>();
}

absl::StatusOr<std::optional<bool>> Bool(const json& body, const char* field) {
  if (!body.contains(field) || body[field].is_null()) return std::nullopt;
  if (!body[field].is_boolean()) return Invalid(absl::StrCat(field, ": expected true or false"));
  return body[field].get<bool>();
}

absl::StatusOr<std::optional<std::string>> String(const json& body, const char* field) {
  if (!body.contains(field) || body[field].is_null()) return std::nullopt;
  if (!body[field].is_string()) return Invalid(absl::StrCat(field, ": expected a string"));
  return body[field].get<std::string>();
}

// An int32 field of the GenerateRequest: out-of-int32 values are errors here (the request
// validation then checks the server's own range).
absl::StatusOr<std::optional<int32_t>> Int32(const json& body, const char* field) {
  RAMI_ASSIGN_OR_RETURN(std::optional<int64_t> v, Int(body, field));
  if (v.has_value() && (*v < INT32_MIN || *v > INT32_MAX)) {
    return Invalid(absl::StrCat(field, ": ", *v, " is out of range"));
  }
  return v.has_value() ? std::optional<int32_t>(static_cast<int32_t>(*v)) : std::nullopt;
}

absl::Status ReadSampling(const json& body, v1::GenerateRequest& r) {
  RAMI_ASSIGN_OR_RETURN(std::optional<double> temperature, Number(body, "temperature"));
  if (temperature.has_value()) r.mutable_sampling()->set_temperature(*temperature);
  RAMI_ASSIGN_OR_RETURN(std::optional<double> top_p, Number(body, "top_p"));
  if (top_p.has_value()) r.mutable_sampling()->set_top_p(*top_p);
  RAMI_ASSIGN_OR_RETURN(std::optional<int32_t> top_k, Int32(body, "top_k"));
  if (top_k.has_value()) r.mutable_sampling()->set_top_k(*top_k);
  RAMI_ASSIGN_OR_RETURN(std::optional<double> min_p, Number(body, "min_p"));
  if (min_p.has_value()) r.mutable_sampling()->set_min_p(*min_p);
  if (body.contains("seed") && !body["seed"].is_null()) {  // any 64-bit value, signed or not
    if (!body["seed"].is_number_integer()) return Invalid("seed: expected an integer");
    r.mutable_sampling()->set_seed(body["seed"].is_number_unsigned()
                                       ? body["seed"].get<uint64_t>()
                                       : static_cast<uint64_t>(body["seed"].get<int64_t>()));
  }
  return absl::OkStatus();
}

absl::Status ReadStopping(const json& body, Endpoint endpoint, v1::GenerateRequest& r) {
  RAMI_ASSIGN_OR_RETURN(std::optional<int32_t> max_tokens, Int32(body, "max_tokens"));
  if (endpoint == Endpoint::kChatCompletions) {
    RAMI_ASSIGN_OR_RETURN(std::optional<int32_t> max_completion,
                          Int32(body, "max_completion_tokens"));
    if (max_completion.has_value()) max_tokens = max_completion;
  }
  if (max_tokens.has_value()) {
    if (*max_tokens < 0)
      return Invalid(absl::StrCat("max_tokens: must be >= 0, got ", *max_tokens));
    r.mutable_stopping()->set_max_tokens(*max_tokens);
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& stop = body["stop"];
    const json list = stop.is_array() ? stop : json::array({stop});
    for (size_t i = 0; i < list.size(); ++i) {
      if (!list[i].is_string()) return Invalid(absl::StrCat("stop[", i, "]: expected a string"));
      r.mutable_stopping()->add_stop(list[i].get<std::string>());
    }
  }
  if (body.contains("stop_token_ids") && !body["stop_token_ids"].is_null()) {
    const json& ids = body["stop_token_ids"];
    if (!ids.is_array()) return Invalid("stop_token_ids: expected an array of integers");
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!IsInt32(ids[i])) {
        return Invalid(absl::StrCat("stop_token_ids[", i, "]: expected a token id"));
      }
      r.mutable_stopping()->add_stop_token_ids(ids[i].get<int32_t>());
    }
  }
  RAMI_ASSIGN_OR_RETURN(std::optional<bool> ignore_eos, Bool(body, "ignore_eos"));
  r.mutable_stopping()->set_ignore_eos(ignore_eos.value_or(false));
  return absl::OkStatus();
}

absl::Status ReadAggregation(const json& body, v1::GenerateRequest& r) {
  RAMI_ASSIGN_OR_RETURN(std::optional<std::string> policy, String(body, "aggregation"));
  if (policy.has_value()) {
    v1::AggregationPolicy p;
    std::string upper = *policy;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!v1::AggregationPolicy_Parse(upper, &p) || p == v1::AGGREGATION_POLICY_UNSPECIFIED) {
      return Invalid(absl::StrCat(
          "aggregation: expected none, majority_vote, weighted_vote or best_logprob, got \"",
          policy->substr(0, 64), "\""));
    }
    r.mutable_aggregation()->set_policy(p);
  }
  RAMI_ASSIGN_OR_RETURN(std::optional<std::string> regex, String(body, "answer_regex"));
  if (regex.has_value()) r.mutable_aggregation()->mutable_extractor()->set_regex(*regex);
  if (!body.contains("early_pruning") || body["early_pruning"].is_null()) return absl::OkStatus();
  const json& p = body["early_pruning"];
  if (!p.is_object()) return Invalid("early_pruning: expected an object");
  v1::EarlyPruning* out = r.mutable_aggregation()->mutable_pruning();
  out->set_enabled(true);
  for (const auto& item : p.items()) {
    // Not a structured binding: clang 14 (the fuzz build, tests/fuzz) cannot capture one.
    const std::string& key = item.key();
    const json& value = item.value();
    const std::string field = "early_pruning." + key;
    auto integer = [&]() -> absl::StatusOr<int32_t> {
      if (!IsInt32(value)) {
        return Invalid(field + ": expected an integer");
      }
      return value.get<int32_t>();
    };
    if (key == "enabled" || key == "stop_when_decided") {
      if (!value.is_boolean()) return Invalid(field + ": expected true or false");
      key == "enabled" ? out->set_enabled(value.get<bool>())
                       : out->set_stop_when_decided(value.get<bool>());
    } else if (key == "percentile") {
      if (!value.is_number()) return Invalid(field + ": expected a number");
      out->set_percentile(value.get<double>());
    } else if (key == "warmup_branches") {
      RAMI_ASSIGN_OR_RETURN(int32_t v, integer());
      out->set_warmup_branches(v);
    } else if (key == "window_tokens") {
      RAMI_ASSIGN_OR_RETURN(int32_t v, integer());
      out->set_window_tokens(v);
    } else if (key == "confidence_top_k") {
      RAMI_ASSIGN_OR_RETURN(int32_t v, integer());
      out->set_confidence_top_k(v);
    } else {
      return Invalid(field + ": unknown field");
    }
  }
  return absl::OkStatus();
}

// Chat message content: a string, or text parts ([{"type": "text", "text": …}]).
absl::StatusOr<std::string> MessageContent(const json& content, const std::string& field) {
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return Invalid(field + ": expected a string or an array of parts");
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string at = absl::StrCat(field, "[", i, "]");
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return Invalid(at + ": only {\"type\": \"text\", \"text\": …} parts are supported");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

// The completions `prompt`: a string, a list of strings, a list of token ids or a list of
// lists of token ids — one job per prompt.
absl::Status ReadPrompts(const json& body, const v1::GenerateRequest& base, OpenAiRequest& out) {
  if (!body.contains("prompt") || body["prompt"].is_null()) return Invalid("prompt: required");
  const json& prompt = body["prompt"];
  auto ids_job = [&](const json& ids, const std::string& field) -> absl::Status {
    v1::GenerateRequest r = base;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!IsInt32(ids[i])) {
        return Invalid(absl::StrCat(field, "[", i, "]: expected a token id"));
      }
      r.mutable_token_ids()->add_ids(ids[i].get<int32_t>());
    }
    out.jobs.push_back(std::move(r));
    out.prompt_texts.emplace_back();
    return absl::OkStatus();
  };
  auto text_job = [&](const std::string& text) {
    v1::GenerateRequest r = base;
    r.set_prompt(text);
    out.jobs.push_back(std::move(r));
    out.prompt_texts.push_back(text);
  };
  if (prompt.is_string()) {
    text_job(prompt.get<std::string>());
  } else if (prompt.is_array() && !prompt.empty() && prompt[0].is_number_integer()) {
    RAMI_RETURN_IF_ERROR(ids_job(prompt, "prompt"));
  } else if (prompt.is_array() && !prompt.empty()) {
    for (size_t i = 0; i < prompt.size(); ++i) {
      const std::string field = absl::StrCat("prompt[", i, "]");
      if (prompt[i].is_string()) {
        text_job(prompt[i].get<std::string>());
      } else if (prompt[i].is_array()) {
        RAMI_RETURN_IF_ERROR(ids_job(prompt[i], field));
      } else {
        return Invalid(field + ": expected a string or an array of token ids");
      }
    }
  } else {
    return Invalid("prompt: expected a string, an array of strings or of token ids");
  }
  return absl::OkStatus();
}

absl::Status ReadLogprobs(const json& body, OpenAiRequest& out, v1::GenerateRequest& base) {
  if (out.endpoint == Endpoint::kCompletions) {
    RAMI_ASSIGN_OR_RETURN(std::optional<int32_t> logprobs, Int32(body, "logprobs"));
    if (logprobs.has_value()) out.logprobs = *logprobs;
    RAMI_ASSIGN_OR_RETURN(std::optional<bool> echo, Bool(body, "echo"));
    out.echo = echo.value_or(false);
  } else {
    RAMI_ASSIGN_OR_RETURN(std::optional<bool> logprobs, Bool(body, "logprobs"));
    RAMI_ASSIGN_OR_RETURN(std::optional<int32_t> top, Int32(body, "top_logprobs"));
    if (top.has_value() && !logprobs.value_or(false)) {
      return Invalid("top_logprobs: needs logprobs: true");
    }
    if (logprobs.value_or(false)) out.logprobs = top.value_or(0);
  }
  if (out.logprobs < -1) return Invalid(absl::StrCat("logprobs: must be >= 0, got ", out.logprobs));
  // The workers return a token's own log-prob with its alternatives: ask for at least one.
  if (out.logprobs >= 0) base.set_logprobs(std::max(out.logprobs, 1));
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadChatMessages(const json& body, v1::GenerateRequest& r) {
  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
    return Invalid("messages: expected a non-empty array of {role, content}");
  }
  for (size_t i = 0; i < body["messages"].size(); ++i) {
    const json& m = body["messages"][i];
    const std::string field = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return Invalid(field + ": expected an object");
    for (const auto& [key, value] : m.items()) {
      if (key != "role" && key != "content" && !value.is_null()) {
        return Invalid(absl::StrCat(field, ".", key, ": not supported by rami"));
      }
    }
    if (!m.contains("role") || !m["role"].is_string()) return Invalid(field + ".role: required");
    v1::ChatMessage* out = r.mutable_messages()->add_messages();
    out->set_role(m["role"].get<std::string>());
    RAMI_ASSIGN_OR_RETURN(std::string content,
                          MessageContent(m.value("content", json()), field + ".content"));
    out->set_content(std::move(content));
  }
  if (body.contains("chat_template_kwargs") && !body["chat_template_kwargs"].is_null()) {
    const json& kwargs = body["chat_template_kwargs"];
    if (!kwargs.is_object()) return Invalid("chat_template_kwargs: expected an object");
    for (const auto& [key, value] : kwargs.items()) {
      (*r.mutable_chat_template_kwargs())[key] = value.dump();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(Endpoint endpoint, std::string_view text,
                                                 const std::string& served_model) {
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return Invalid("the request body is not a JSON object");
  }
  RAMI_RETURN_IF_ERROR(CheckKnownFields(body, endpoint));
  RAMI_RETURN_IF_ERROR(CheckUnsupported(body));
  OpenAiRequest out;
  out.endpoint = endpoint;
  RAMI_ASSIGN_OR_RETURN(std::optional<std::string> model, String(body, "model"));
  out.model = model.value_or(served_model);
  if (out.model != served_model) {
    return absl::NotFoundError(absl::StrCat("The model `", out.model.substr(0, 256),
                                            "` does not exist (serving `", served_model, "`)"));
  }
  v1::GenerateRequest base;
  RAMI_ASSIGN_OR_RETURN(std::optional<int32_t> n, Int32(body, "n"));
  out.n = n.value_or(1);
  base.set_n(out.n);
  RAMI_RETURN_IF_ERROR(ReadSampling(body, base));
  RAMI_RETURN_IF_ERROR(ReadStopping(body, endpoint, base));
  RAMI_RETURN_IF_ERROR(ReadAggregation(body, base));
  RAMI_RETURN_IF_ERROR(ReadLogprobs(body, out, base));
  RAMI_ASSIGN_OR_RETURN(std::optional<int32_t> priority, Int32(body, "priority"));
  base.set_priority(priority.value_or(0));
  // Prefix caching: vLLM's cache_salt, and rami's opt-out.
  RAMI_ASSIGN_OR_RETURN(std::optional<std::string> salt, String(body, "cache_salt"));
  base.set_cache_salt(salt.value_or(""));
  RAMI_ASSIGN_OR_RETURN(std::optional<bool> skip_cache, Bool(body, "skip_prefix_cache"));
  base.set_skip_prefix_cache(skip_cache.value_or(false));
  RAMI_ASSIGN_OR_RETURN(std::optional<double> deadline, Number(body, "deadline_seconds"));
  if (deadline.has_value()) {
    if (!(*deadline > 0 && *deadline <= 86400 * 365)) {
      return Invalid("deadline_seconds: expected a number of seconds in (0, 31536000]");
    }
    const absl::Time at = absl::Now() + absl::Seconds(*deadline);
    base.mutable_deadline()->set_seconds(absl::ToUnixSeconds(at));
    base.mutable_deadline()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(at - absl::FromUnixSeconds(absl::ToUnixSeconds(at)))));
  }
  RAMI_ASSIGN_OR_RETURN(std::optional<bool> as_ids, Bool(body, "return_tokens_as_token_ids"));
  out.tokens_as_ids = as_ids.value_or(false);
  RAMI_ASSIGN_OR_RETURN(std::optional<bool> stream, Bool(body, "stream"));
  out.stream = stream.value_or(false);
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& o = body["stream_options"];
    if (!o.is_object()) return Invalid("stream_options: expected an object");
    if (!out.stream) return Invalid("stream_options: only with stream: true");
    for (const auto& [key, value] : o.items()) {
      if (key != "include_usage" || !value.is_boolean()) {
        return Invalid(absl::StrCat("stream_options.", key, ": only include_usage (a boolean)"));
      }
      out.include_usage = value.get<bool>();
    }
  }
  base.set_stream_deltas(true);  // the front end builds its responses from the deltas
  // max_tokens 0 with echo: score the prompt, generate nothing (OpenAI's legacy scoring).
  if (base.stopping().max_tokens() == 0 && body.contains("max_tokens") &&
      !body["max_tokens"].is_null()) {
    if (!out.echo) return Invalid("max_tokens: 0 is only accepted with echo: true");
    out.score_only = true;
    base.set_score_only(true);
  }
  if (out.echo && (out.logprobs >= 0 || out.score_only)) {
    base.set_prompt_logprobs(std::max(out.logprobs, 0));
  }

  if (endpoint == Endpoint::kChatCompletions) {
    RAMI_RETURN_IF_ERROR(ReadChatMessages(body, base));
    out.jobs.push_back(std::move(base));
    out.prompt_texts.emplace_back();
  } else {
    RAMI_RETURN_IF_ERROR(ReadPrompts(body, base, out));
  }
  return out;
}

absl::Status WithHttpFieldNames(const absl::Status& status, Endpoint endpoint) {
  const std::pair<absl::string_view, absl::string_view> renames[] = {
      {"sampling.", ""},
      {"stopping.", ""},
      {"aggregation.extractor.regex", "answer_regex"},
      {"aggregation.pruning.", "early_pruning."},
      {"aggregation.policy", "aggregation"},
      {"token_ids.ids", "prompt"},
      {"token_ids", "prompt"},
      {"messages.messages", "messages"},
      {"input:", endpoint == Endpoint::kCompletions ? "prompt:" : "messages:"},
      {"prompt_logprobs", "logprobs"},
  };
  const absl::string_view message = status.message();
  for (const auto& [from, to] : renames) {
    if (message.substr(0, from.size()) == from) {
      return absl::Status(status.code(), absl::StrCat(to, message.substr(from.size())));
    }
  }
  return status;
}

}  // namespace rami::http
