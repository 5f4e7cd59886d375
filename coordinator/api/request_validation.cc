// Request validation (see request_validation.h). Cheap field checks run first, the input is
// tokenized last, then the prompt and max_tokens are checked against the context.
#include "coordinator/api/request_validation.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/quote.h"
#include "base/status_macros.h"
#include "coordinator/tokenizer/regex.h"
#include "coordinator/tokenizer/utf8.h"

namespace rami::api {
namespace {

using rami::v1::GenerateRequest;

// An answer extractor is a short pattern; this bounds the work PCRE2 does to compile it. Same
// cap as aggregation::kMaxExtractorRegexBytes (this library does not depend on aggregation/).
constexpr size_t kMaxExtractorRegexBytes = 4096;
// google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;
// Prefix caching: a salt is an opaque tag, not data; a few boundaries mark a prompt's parts.
constexpr size_t kMaxCacheSaltBytes = 256;
constexpr int kMaxCacheBoundaries = 8;

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

absl::Status OutOfRange(absl::string_view field, int64_t value, int64_t lo, int64_t hi) {
  return Invalid(absl::StrCat(field, ": must be in [", lo, ", ", hi, "], got ", value));
}

std::string VocabularyError(absl::string_view field, int32_t id, int32_t vocab_size) {
  return absl::StrCat(field, ": ", id, " is outside the vocabulary [0, ", vocab_size, ")");
}

absl::Status ValidateModel(const GenerateRequest& request, const ModelFrontEnd& model) {
  if (request.model().empty() || request.model() == model.name()) return absl::OkStatus();
  return Invalid(absl::StrCat("model: unknown model \"", Quote(request.model()), "\" (serving \"",
                              model.name(), "\")"));
}

// The public API's defaults (temperature 1), then the rules every sampler shares.
absl::StatusOr<SamplingParams> ValidateSampling(const rami::v1::Sampling& s) {
  const SamplingParams out{.temperature = s.has_temperature() ? s.temperature() : 1.0f,
                           .top_k = s.top_k(),
                           .top_p = s.has_top_p() ? s.top_p() : 1.0f,
                           .min_p = s.min_p(),
                           .seed = s.seed()};
  if (absl::Status status = ValidateSamplingParams(out, "sampling."); !status.ok()) return status;
  return out;
}

// Everything of `stopping` except max_tokens, which needs the prompt's length.
absl::StatusOr<StoppingOptions> ValidateStopping(const rami::v1::Stopping& s,
                                                 const ModelFrontEnd& model,
                                                 const ServerLimits& limits) {
  StoppingOptions out;
  if (s.max_tokens() < 0) {
    return Invalid(absl::StrCat("stopping.max_tokens: must be >= 0 (0 = the server's default, ",
                                limits.max_tokens_default, "), got ", s.max_tokens()));
  }
  if (s.stop_size() > limits.max_stop_strings) {
    return Invalid(absl::StrCat("stopping.stop: at most ", limits.max_stop_strings,
                                " strings, got ", s.stop_size()));
  }
  for (int i = 0; i < s.stop_size(); ++i) {
    const std::string& stop = s.stop(i);
    const std::string field = absl::StrCat("stopping.stop[", i, "]");
    if (stop.empty()) return Invalid(field + ": empty");
    if (stop.size() > static_cast<size_t>(limits.max_stop_string_bytes)) {
      return Invalid(absl::StrCat(field, ": at most ", limits.max_stop_string_bytes, " bytes, got ",
                                  stop.size()));
    }
    if (!tokenizer::Utf8Valid(stop)) return Invalid(field + ": not valid UTF-8");
    out.stop.push_back(stop);
  }
  for (int i = 0; i < s.stop_token_ids_size(); ++i) {
    const int32_t id = s.stop_token_ids(i);
    if (id < 0 || id >= model.vocab_size()) {
      return Invalid(VocabularyError(absl::StrCat("stopping.stop_token_ids[", i, "]"), id,
                                     model.vocab_size()));
    }
    out.stop_token_ids.push_back(id);
  }
  out.ignore_eos = s.ignore_eos();
  if (!out.ignore_eos) out.eos_token_ids = model.eos_token_ids();
  out.stop_token_ids.insert(out.stop_token_ids.end(), out.eos_token_ids.begin(),
                            out.eos_token_ids.end());
  for (std::vector<int32_t>* ids : {&out.stop_token_ids, &out.eos_token_ids}) {
    std::sort(ids->begin(), ids->end());
    ids->erase(std::unique(ids->begin(), ids->end()), ids->end());
  }
  return out;
}

absl::StatusOr<PruningOptions> ValidatePruning(const rami::v1::EarlyPruning& p,
                                               AggregationPolicy policy, const ServerLimits& limits,
                                               int64_t context) {
  PruningOptions out;  // a field left at 0 keeps its default (proto3 cannot tell them apart)
  out.enabled = p.enabled();
  if (p.warmup_branches() != 0) out.warmup_branches = p.warmup_branches();
  if (p.window_tokens() != 0) out.window_tokens = p.window_tokens();
  if (p.percentile() != 0) out.percentile = p.percentile();
  if (p.confidence_top_k() != 0) out.confidence_top_k = p.confidence_top_k();
  out.stop_when_decided = p.stop_when_decided();
  if (out.warmup_branches < 1 || out.warmup_branches > limits.max_n) {
    return OutOfRange("aggregation.pruning.warmup_branches", out.warmup_branches, 1, limits.max_n);
  }
  if (out.window_tokens < 1 || out.window_tokens > context) {
    return OutOfRange("aggregation.pruning.window_tokens", out.window_tokens, 1, context);
  }
  if (!(out.percentile >= 0 && out.percentile <= 100)) {  // also rejects NaN
    return Invalid(
        absl::StrCat("aggregation.pruning.percentile: must be in [0, 100], got ", out.percentile));
  }
  if (out.confidence_top_k < 1 || out.confidence_top_k > kMaxTopLogprobs) {
    return OutOfRange("aggregation.pruning.confidence_top_k", out.confidence_top_k, 1,
                      kMaxTopLogprobs);
  }
  if (out.stop_when_decided && policy != AggregationPolicy::kMajorityVote &&
      policy != AggregationPolicy::kWeightedVote) {
    return Invalid(
        "aggregation.pruning.stop_when_decided: needs policy MAJORITY_VOTE or WEIGHTED_VOTE");
  }
  return out;
}

absl::StatusOr<AggregationOptions> ValidateAggregation(const rami::v1::Aggregation& a,
                                                       const ServerLimits& limits,
                                                       int64_t context) {
  AggregationOptions out;
  // A wire enum is open: an unknown number can arrive, so this switch has a default.
  switch (a.policy()) {
    case rami::v1::AGGREGATION_POLICY_UNSPECIFIED:
    case rami::v1::NONE:
      out.policy = AggregationPolicy::kNone;
      break;
    case rami::v1::MAJORITY_VOTE:
      out.policy = AggregationPolicy::kMajorityVote;
      break;
    case rami::v1::WEIGHTED_VOTE:
      out.policy = AggregationPolicy::kWeightedVote;
      break;
    case rami::v1::BEST_LOGPROB:
      out.policy = AggregationPolicy::kBestLogprob;
      break;
    default:
      return Invalid(
          absl::StrCat("aggregation.policy: unknown value ", static_cast<int>(a.policy())));
  }
  const std::string& regex = a.extractor().regex();
  if (!regex.empty()) {
    if (regex.size() > kMaxExtractorRegexBytes) {
      return Invalid(absl::StrCat("aggregation.extractor.regex: at most ", kMaxExtractorRegexBytes,
                                  " bytes, got ", regex.size()));
    }
    // The compile below skips PCRE2's own UTF check, so check here.
    if (!tokenizer::Utf8Valid(regex)) return Invalid("aggregation.extractor.regex: not UTF-8");
    auto compiled = tokenizer::Regex::Compile(regex);  // the answer extractor's flags
    if (!compiled.ok()) {
      return Invalid(absl::StrCat("aggregation.extractor.regex: ", compiled.status().message()));
    }
    out.extractor_regex = regex;
  }
  RAMI_ASSIGN_OR_RETURN(out.pruning, ValidatePruning(a.pruning(), out.policy, limits, context));
  return out;
}

absl::StatusOr<absl::Time> ValidateDeadline(const GenerateRequest& request, absl::Time now) {
  if (!request.has_deadline()) return absl::InfiniteFuture();
  const auto& ts = request.deadline();
  if (ts.seconds() < kMinTimestampSeconds || ts.seconds() > kMaxTimestampSeconds ||
      ts.nanos() < 0 || ts.nanos() > 999'999'999) {
    return Invalid(absl::StrCat("deadline: not a valid timestamp (seconds ", ts.seconds(),
                                ", nanos ", ts.nanos(), ")"));
  }
  const absl::Time deadline = absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
  if (deadline <= now) {
    const absl::TimeZone utc = absl::UTCTimeZone();
    return Invalid(absl::StrCat("deadline: in the past (",
                                absl::FormatTime(absl::RFC3339_full, deadline, utc), ", now ",
                                absl::FormatTime(absl::RFC3339_full, now, utc), ")"));
  }
  return deadline;
}

// The prompt against max_prompt_tokens and the context (which must leave room for a token
// when the request `generates`).
absl::Status CheckPromptLength(int64_t prompt_tokens, int64_t context, const ServerLimits& limits,
                               bool generates) {
  if (limits.max_prompt_tokens > 0 && prompt_tokens > limits.max_prompt_tokens) {
    return Invalid(absl::StrCat("input: the prompt has ", prompt_tokens,
                                " tokens, more than max_prompt_tokens (", limits.max_prompt_tokens,
                                ")"));
  }
  if (generates && prompt_tokens >= context) {
    return Invalid(absl::StrCat("input: the prompt has ", prompt_tokens, " tokens; the context (",
                                context, ") leaves no room to generate"));
  }
  if (prompt_tokens > context) {
    return Invalid(absl::StrCat("input: the prompt has ", prompt_tokens,
                                " tokens, more than the context (", context, ")"));
  }
  return absl::OkStatus();
}

// max_tokens against the context, now that the prompt's length is known.
absl::StatusOr<int32_t> ResolveMaxTokens(int32_t requested, int64_t prompt_tokens, int64_t context,
                                         const ServerLimits& limits) {
  RAMI_RETURN_IF_ERROR(CheckPromptLength(prompt_tokens, context, limits, /*generates=*/true));
  if (requested == 0) {  // the server's default, shortened to fit the context
    return static_cast<int32_t>(
        std::min<int64_t>(limits.max_tokens_default, context - prompt_tokens));
  }
  if (prompt_tokens + requested > context) {
    return Invalid(absl::StrCat("stopping.max_tokens: prompt (", prompt_tokens,
                                " tokens) + max_tokens (", requested, ") exceeds the context (",
                                context, ")"));
  }
  return requested;
}

// The prefix-cache fields, and the prompt's snapshot points: the chat's part before its last
// user turn and the client's boundaries (the whole prompt is cached without a point).
absl::Status ValidatePrefixCache(const GenerateRequest& request, const ModelFrontEnd& model,
                                 int64_t prompt_tokens, ValidatedRequest& out) {
  if (request.cache_salt().size() > kMaxCacheSaltBytes) {
    return Invalid(absl::StrCat("cache_salt: at most ", kMaxCacheSaltBytes, " bytes, got ",
                                request.cache_salt().size()));
  }
  if (request.cache_boundaries_size() > kMaxCacheBoundaries) {
    return Invalid(absl::StrCat("cache_boundaries: at most ", kMaxCacheBoundaries, " entries, got ",
                                request.cache_boundaries_size()));
  }
  out.prefix_cache = !request.skip_prefix_cache();
  out.cache_salt = request.cache_salt();
  for (int i = 0; i < request.cache_boundaries_size(); ++i) {
    const int64_t at = request.cache_boundaries(i);
    if (at < 1 || at > prompt_tokens) {
      return OutOfRange(absl::StrCat("cache_boundaries[", i, "] (a prompt token offset)"), at, 1,
                        prompt_tokens);
    }
    if (at < prompt_tokens) out.snapshot_points.push_back(at);
  }
  if (const int64_t chat = model.ChatPrefixTokens(request, out.prompt_token_ids); chat > 0) {
    out.snapshot_points.push_back(chat);
  }
  std::sort(out.snapshot_points.begin(), out.snapshot_points.end());
  out.snapshot_points.erase(std::unique(out.snapshot_points.begin(), out.snapshot_points.end()),
                            out.snapshot_points.end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> Tokenize(const rami::v1::TokenizeRequest& request,
                                              const ModelFrontEnd& model) {
  GenerateRequest as_generate;
  as_generate.set_model(request.model());
  RAMI_RETURN_IF_ERROR(ValidateModel(as_generate, model));
  switch (request.input_case()) {
    case rami::v1::TokenizeRequest::kPrompt:
      as_generate.set_prompt(request.prompt());
      break;
    case rami::v1::TokenizeRequest::kMessages:
      *as_generate.mutable_messages() = request.messages();
      break;
    case rami::v1::TokenizeRequest::INPUT_NOT_SET:
      return Invalid("input: one of prompt or messages is required");
  }
  *as_generate.mutable_chat_template_kwargs() = request.chat_template_kwargs();
  return model.InputIds(as_generate);
}

absl::StatusOr<std::string> Detokenize(const rami::v1::DetokenizeRequest& request,
                                       const ModelFrontEnd& model) {
  GenerateRequest as_generate;
  as_generate.set_model(request.model());
  RAMI_RETURN_IF_ERROR(ValidateModel(as_generate, model));
  if (model.tokenizer() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("token_ids: model \"", model.name(),
                                                      "\" has no tokenizer (no tokenizer.json)"));
  }
  if (request.token_ids_size() > model.max_context()) {
    return Invalid(absl::StrCat("token_ids: at most the context (", model.max_context(),
                                ") ids, got ", request.token_ids_size()));
  }
  for (int i = 0; i < request.token_ids_size(); ++i) {
    if (request.token_ids(i) < 0 || request.token_ids(i) >= model.vocab_size()) {
      return Invalid(absl::StrCat("token_ids[", i, "]: ", request.token_ids(i),
                                  " is outside the vocabulary [0, ", model.vocab_size(), ")"));
    }
  }
  return model.tokenizer()->Decode({request.token_ids().begin(), request.token_ids().end()});
}

absl::StatusOr<ValidatedRequest> ValidateRequest(const GenerateRequest& request,
                                                 const ModelFrontEnd& model,
                                                 const ServerLimits& limits, absl::Time now) {
  RAMI_RETURN_IF_ERROR(ValidateModel(request, model));
  const int64_t context = limits.EffectiveContext(model.max_context());
  ValidatedRequest out;
  out.model = model.name();
  out.n = request.n() == 0 ? 1 : request.n();  // proto3: 0 = unset = 1 branch
  if (out.n < 1 || out.n > limits.max_n) return OutOfRange("n", request.n(), 1, limits.max_n);
  RAMI_ASSIGN_OR_RETURN(out.sampling, ValidateSampling(request.sampling()));
  RAMI_ASSIGN_OR_RETURN(out.stopping, ValidateStopping(request.stopping(), model, limits));
  out.logprobs = request.logprobs();
  if (out.logprobs < 0 || out.logprobs > limits.max_logprobs) {
    return OutOfRange("logprobs", out.logprobs, 0, limits.max_logprobs);
  }
  RAMI_ASSIGN_OR_RETURN(out.aggregation,
                        ValidateAggregation(request.aggregation(), limits, context));
  out.priority = request.priority();
  RAMI_ASSIGN_OR_RETURN(out.deadline, ValidateDeadline(request, now));
  out.stream_deltas = request.stream_deltas();

  if (request.has_prompt_logprobs()) {
    if (request.prompt_logprobs() < 0 || request.prompt_logprobs() > limits.max_logprobs) {
      return OutOfRange("prompt_logprobs", request.prompt_logprobs(), 0, limits.max_logprobs);
    }
    out.prompt_logprobs = request.prompt_logprobs();
  }
  if (request.score_only() && !out.prompt_logprobs.has_value()) {
    return Invalid("score_only: needs prompt_logprobs (scoring the prompt is all it does)");
  }

  RAMI_ASSIGN_OR_RETURN(out.prompt_token_ids, model.InputIds(request));
  const auto prompt_tokens = static_cast<int64_t>(out.prompt_token_ids.size());
  RAMI_RETURN_IF_ERROR(ValidatePrefixCache(request, model, prompt_tokens, out));
  if (request.score_only()) {  // nothing is generated: the prompt may fill the context
    RAMI_RETURN_IF_ERROR(CheckPromptLength(prompt_tokens, context, limits, /*generates=*/false));
    out.score_only = true;
    out.n = 0;
    out.stopping.max_tokens = 0;
    return out;
  }
  RAMI_ASSIGN_OR_RETURN(out.stopping.max_tokens, ResolveMaxTokens(request.stopping().max_tokens(),
                                                                  prompt_tokens, context, limits));
  return out;
}

}  // namespace rami::api
