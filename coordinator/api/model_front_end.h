// ModelFrontEnd: what the coordinator knows about the served model before any worker runs it —
// its name, vocabulary size, context length, EOS ids, and (when the checkpoint ships them) its
// tokenizer and chat template. It turns a request's input (prompt text, chat messages or
// token ids) into prompt token ids exactly as transformers would.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "coordinator/chat/chat_template.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "rami/v1/inference.pb.h"

namespace rami::api {

struct ModelSpec {
  std::string name;                    // what requests put in GenerateRequest.model
  int32_t vocab_size = 0;              // valid token ids are [0, vocab_size)
  int64_t max_context = 0;             // tokens: prompt + generated
  std::vector<int32_t> eos_token_ids;  // end generation unless ignore_eos
  // config.json's eos_token_id alone: what every worker reads from the same checkpoint and
  // reports at load (the coordinator refuses a group whose report differs).
  std::vector<int32_t> config_eos_token_ids;
};

class ModelFrontEnd {
 public:
  // Reads `model_dir`: config.json (vocab_size; max_position_embeddings, default 4096 as the
  // worker reads it; eos_token_id), generation_config.json (eos_token_id, which wins as in
  // transformers' GenerationConfig), and, when tokenizer.json exists, the tokenizer and the
  // chat template (chat_template.jinja or tokenizer_config.json's chat_template). Without
  // tokenizer.json the model serves token_ids input only. `name` "" = the directory's name.
  static absl::StatusOr<ModelFrontEnd> Load(const std::string& model_dir,
                                            const std::string& name = "");

  // For tests and models without a tokenizer. Requires vocab_size > 0, max_context > 0, EOS
  // ids inside the vocabulary (checked).
  explicit ModelFrontEnd(ModelSpec spec,
                         std::unique_ptr<const tokenizer::Tokenizer> tokenizer = nullptr,
                         std::optional<chat::ChatTemplate> chat_template = std::nullopt);

  const std::string& name() const { return spec_.name; }
  int32_t vocab_size() const { return spec_.vocab_size; }
  int64_t max_context() const { return spec_.max_context; }
  const std::vector<int32_t>& eos_token_ids() const { return spec_.eos_token_ids; }
  const std::vector<int32_t>& config_eos_token_ids() const { return spec_.config_eos_token_ids; }
  const tokenizer::Tokenizer* tokenizer() const { return tokenizer_.get(); }  // may be null
  bool has_chat_template() const { return chat_template_.has_value(); }

  // The request's `input` as prompt token ids; errors name the field (prompt, messages,
  // token_ids.ids[i], chat_template_kwargs["k"]). Not yet checked against the context.
  //  - prompt: encoded with special tokens (BOS), as tokenizer(prompt) does in transformers;
  //  - messages: rendered with add_generation_prompt=true and chat_template_kwargs as extra
  //    template variables, then encoded *without* special tokens (the template writes BOS
  //    itself), as apply_chat_template(tokenize=True) does;
  //  - token_ids: taken as they are, each checked against the vocabulary.
  absl::StatusOr<std::vector<int32_t>> InputIds(const rami::v1::GenerateRequest& request) const;

  // The chat prompt text for `messages` (the step before encoding in InputIds).
  absl::StatusOr<std::string> RenderChat(const rami::v1::GenerateRequest& request) const;

  // Where the chat's part before its last user turn's content ends in `ids` (InputIds of
  // `request`): the tokens it shares with the same chat asking another last question. 0 when
  // there is none (not messages input, or the last user turn is the first message). The
  // prefix cache snapshots there: the system prompt and few-shot turns many requests share.
  int64_t ChatPrefixTokens(const rami::v1::GenerateRequest& request,
                           absl::Span<const int32_t> ids) const;

 private:
  absl::Status RequireTokenizer(const char* field) const;

  ModelSpec spec_;
  std::unique_ptr<const tokenizer::Tokenizer> tokenizer_;
  std::optional<chat::ChatTemplate> chat_template_;
};

}  // namespace rami::api
