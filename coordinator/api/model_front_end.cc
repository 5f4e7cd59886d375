// ModelFrontEnd (see model_front_end.h): loading a model directory's metadata, and a
// request's input -> prompt token ids.
#include "coordinator/api/model_front_end.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/quote.h"
#include "base/status_macros.h"
#include "coordinator/tokenizer/utf8.h"

namespace rami::api {
namespace {

using nlohmann::json;
using rami::v1::GenerateRequest;

// Variables the renderer sets itself; transformers rejects them as extra kwargs too (a
// duplicate keyword argument of render_jinja_template).
constexpr const char* kReservedTemplateVariables[] = {
    "messages", "tools", "documents", "add_generation_prompt", "continue_final_message"};
// Deeper chat_template_kwargs values are refused before parsing: the template values built
// from them are recursive structures.
constexpr int kMaxKwargsJsonDepth = 64;

// null when the file is absent and not required.
absl::StatusOr<json> ReadJsonFile(const std::string& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!required) return json();
    return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  json parsed = json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  return parsed;
}

// config.json / generation_config.json eos_token_id: an int, a list of ints, or null.
absl::Status AppendEosIds(const json& field, const std::string& where, int32_t vocab_size,
                          std::vector<int32_t>* ids) {
  const json items = field.is_array() ? field : json::array({field});
  for (const json& id : items) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, " eos_token_id: expected token ids in [0, ", vocab_size, "), got ", field.dump()));
    }
    ids->push_back(id.get<int32_t>());
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> IntField(const json& config, const std::string& where, const char* key,
                                 std::optional<int64_t> fallback) {
  if (!config.contains(key) || config[key].is_null()) {
    if (fallback) return *fallback;
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", key, " missing"));
  }
  const json& v = config[key];
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", key, " must be an integer in [1, 2^31), got ", v.dump()));
  }
  return v.get<int64_t>();
}

// The directory's own name: "models/qwen3_dms/" and "." both name the folder itself.
std::string BaseName(const std::string& dir) {
  std::error_code error;
  std::filesystem::path path = std::filesystem::weakly_canonical(dir, error);
  if (error) path = std::filesystem::path(dir).lexically_normal();
  if (path.filename().empty()) path = path.parent_path();
  return path.filename().string();
}

// Bracket nesting of a JSON text, strings skipped; stops counting past `limit`.
int JsonDepth(std::string_view text, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) break;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

absl::Status Invalid(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

}  // namespace

absl::StatusOr<ModelFrontEnd> ModelFrontEnd::Load(const std::string& model_dir,
                                                  const std::string& name) {
  const std::string config_path = model_dir + "/config.json";
  const std::string gen_path = model_dir + "/generation_config.json";
  RAMI_ASSIGN_OR_RETURN(json config, ReadJsonFile(config_path, /*required=*/true));
  RAMI_ASSIGN_OR_RETURN(json generation, ReadJsonFile(gen_path, /*required=*/false));

  std::unique_ptr<const tokenizer::Tokenizer> tok;
  std::optional<chat::ChatTemplate> chat_template;
  std::error_code exists_error;
  if (std::filesystem::exists(model_dir + "/tokenizer.json", exists_error)) {
    RAMI_ASSIGN_OR_RETURN(tok, tokenizer::Tokenizer::FromDirectory(model_dir));
    auto loaded = chat::ChatTemplate::FromDirectory(model_dir);
    if (loaded.ok()) {
      chat_template = std::move(*loaded);
    } else if (!absl::IsNotFound(loaded.status())) {  // NotFound: the model has none
      return loaded.status();
    }
  }

  ModelSpec spec;
  spec.name = name.empty() ? BaseName(model_dir) : name;
  std::optional<int64_t> tokenizer_vocab;
  if (tok != nullptr) tokenizer_vocab = tok->vocab_size();
  RAMI_ASSIGN_OR_RETURN(int64_t vocab,
                        IntField(config, config_path, "vocab_size", tokenizer_vocab));
  spec.vocab_size = static_cast<int32_t>(vocab);
  if (tok != nullptr && tok->vocab_size() > spec.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir, "/tokenizer.json: has ids up to ", tok->vocab_size() - 1,
                     ", outside the model's vocab_size ", spec.vocab_size, " (", config_path, ")"));
  }
  RAMI_ASSIGN_OR_RETURN(spec.max_context,
                        IntField(config, config_path, "max_position_embeddings", 4096));

  // EOS: generation_config.json, else config.json, else the tokenizer's eos_token.
  if (config.contains("eos_token_id") && !config["eos_token_id"].is_null()) {
    RAMI_RETURN_IF_ERROR(AppendEosIds(config["eos_token_id"], config_path, spec.vocab_size,
                                      &spec.config_eos_token_ids));
  }
  if (generation.contains("eos_token_id") && !generation["eos_token_id"].is_null()) {
    RAMI_RETURN_IF_ERROR(
        AppendEosIds(generation["eos_token_id"], gen_path, spec.vocab_size, &spec.eos_token_ids));
  } else if (!spec.config_eos_token_ids.empty()) {
    spec.eos_token_ids = spec.config_eos_token_ids;
  } else if (tok != nullptr) {
    spec.eos_token_ids = tok->special_tokens().stop_ids;
  }
  return ModelFrontEnd(std::move(spec), std::move(tok), std::move(chat_template));
}

ModelFrontEnd::ModelFrontEnd(ModelSpec spec, std::unique_ptr<const tokenizer::Tokenizer> tok,
                             std::optional<chat::ChatTemplate> chat_template)
    : spec_(std::move(spec)), tokenizer_(std::move(tok)), chat_template_(std::move(chat_template)) {
  RAMI_CHECK(spec_.vocab_size > 0 && spec_.max_context > 0, "model %s: vocab %d, context %lld",
             spec_.name.c_str(), spec_.vocab_size, static_cast<long long>(spec_.max_context));
  for (int32_t id : spec_.eos_token_ids) {
    RAMI_CHECK(id >= 0 && id < spec_.vocab_size, "model %s: EOS id %d", spec_.name.c_str(), id);
  }
  RAMI_CHECK(tokenizer_ != nullptr || !chat_template_.has_value(),
             "model %s: a chat template needs a tokenizer", spec_.name.c_str());
}

absl::Status ModelFrontEnd::RequireTokenizer(const char* field) const {
  if (tokenizer_ != nullptr) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(field, ": model \"", spec_.name, "\" has no tokenizer; send token_ids"));
}

int64_t ModelFrontEnd::ChatPrefixTokens(const GenerateRequest& request,
                                        absl::Span<const int32_t> ids) const {
  if (request.input_case() != GenerateRequest::kMessages) return 0;
  const auto& messages = request.messages().messages();
  int last_user = -1;
  for (int i = 0; i < messages.size(); ++i) {
    if (messages[i].role() == "user") last_user = i;
  }
  if (last_user < 1) return 0;
  // The same chat with another last question: the tokens both prompts share end where that
  // question starts. Rendering the earlier turns alone would not do: templates render a turn
  // differently depending on what follows it (Qwen3 closes the assistant turns after the last
  // user turn with an empty think block).
  GenerateRequest other = request;
  rami::v1::ChatMessage* question = other.mutable_messages()->mutable_messages(last_user);
  const std::string& content = messages[last_user].content();
  question->set_content(!content.empty() && content[0] == '#' ? "$" : "#");
  absl::StatusOr<std::vector<int32_t>> other_ids = InputIds(other);
  if (!other_ids.ok()) return 0;
  const auto mismatch = std::mismatch(ids.begin(), ids.end(), other_ids->begin(), other_ids->end());
  const int64_t shared = mismatch.first - ids.begin();
  return shared < static_cast<int64_t>(ids.size()) ? shared : 0;
}

absl::StatusOr<std::string> ModelFrontEnd::RenderChat(const GenerateRequest& request) const {
  if (request.input_case() != GenerateRequest::kMessages) return Invalid("messages: not set");
  RAMI_RETURN_IF_ERROR(RequireTokenizer("messages"));
  if (!chat_template_.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "messages: model \"", spec_.name, "\" has no chat template; send prompt or token_ids"));
  }
  const auto& messages = request.messages().messages();
  if (messages.empty()) return Invalid("messages: empty");
  chat::ChatTemplateInput input;
  input.add_generation_prompt = true;
  for (int i = 0; i < messages.size(); ++i) {
    const std::string field = absl::StrCat("messages.messages[", i, "]");
    const rami::v1::ChatMessage& m = messages[i];
    if (m.role().empty()) return Invalid(absl::StrCat(field, ".role: empty"));
    if (!tokenizer::Utf8Valid(m.role())) return Invalid(field + ".role: not valid UTF-8");
    if (!tokenizer::Utf8Valid(m.content())) return Invalid(field + ".content: not valid UTF-8");
    nlohmann::ordered_json message = nlohmann::ordered_json::object();
    message["role"] = m.role();
    message["content"] = m.content();
    input.messages.push_back(std::move(message));
  }
  // Sorted, so the render never depends on the protobuf map's iteration order.
  std::vector<std::pair<std::string, std::string>> kwargs(request.chat_template_kwargs().begin(),
                                                          request.chat_template_kwargs().end());
  std::sort(kwargs.begin(), kwargs.end());
  for (const auto& [key, value] : kwargs) {
    const std::string field = absl::StrCat("chat_template_kwargs[\"", Quote(key), "\"]");
    if (key.empty()) return Invalid("chat_template_kwargs: empty key");
    for (const char* reserved : kReservedTemplateVariables) {
      if (key == reserved) return Invalid(field + ": reserved template variable");
    }
    if (JsonDepth(value, kMaxKwargsJsonDepth) > kMaxKwargsJsonDepth) {
      return Invalid(absl::StrCat(field, ": nested deeper than ", kMaxKwargsJsonDepth));
    }
    auto parsed = nlohmann::ordered_json::parse(value, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) {
      return Invalid(absl::StrCat(field, ": must be a JSON value (true, 3, \"text\", [..]), got ",
                                  value.substr(0, 64)));
    }
    input.extra[key] = std::move(parsed);
  }
  auto text = chat_template_->Apply(input);
  if (!text.ok()) {  // the template's code stays: a render over its limits is RESOURCE_EXHAUSTED
    return absl::Status(text.status().code(),
                        absl::StrCat("messages: chat template: ", text.status().message()));
  }
  return text;
}

absl::StatusOr<std::vector<int32_t>> ModelFrontEnd::InputIds(const GenerateRequest& request) const {
  if (request.input_case() != GenerateRequest::kMessages &&
      !request.chat_template_kwargs().empty()) {
    return Invalid("chat_template_kwargs: only used with messages input");
  }
  switch (request.input_case()) {
    case GenerateRequest::kPrompt: {
      if (request.prompt().empty()) return Invalid("prompt: empty");
      RAMI_RETURN_IF_ERROR(RequireTokenizer("prompt"));
      auto ids = tokenizer_->Encode(request.prompt(), /*add_special_tokens=*/true);
      if (!ids.ok()) return Invalid(absl::StrCat("prompt: ", ids.status().message()));
      return ids;
    }
    case GenerateRequest::kMessages: {
      RAMI_ASSIGN_OR_RETURN(std::string text, RenderChat(request));
      // The template already wrote BOS (if the model uses one): no post-processor here.
      auto ids = tokenizer_->Encode(text, /*add_special_tokens=*/false);
      if (!ids.ok()) return Invalid(absl::StrCat("messages: ", ids.status().message()));
      if (ids->empty()) return Invalid("messages: the chat template rendered an empty prompt");
      return ids;
    }
    case GenerateRequest::kTokenIds: {
      const auto& ids = request.token_ids().ids();
      if (ids.empty()) return Invalid("token_ids.ids: empty");
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= spec_.vocab_size) {
          return Invalid(absl::StrCat("token_ids.ids[", i, "]: ", ids[i],
                                      " is outside the vocabulary [0, ", spec_.vocab_size, ")"));
        }
      }
      return std::vector<int32_t>(ids.begin(), ids.end());
    }
    case GenerateRequest::INPUT_NOT_SET:
      break;
  }
  return Invalid("input: empty; set one of prompt, messages or token_ids");
}

}  // namespace rami::api
