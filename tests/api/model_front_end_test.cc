// ModelFrontEnd: loading model directories, and prompt / chat input -> token ids compared with
// what Hugging Face produces (golden encodes, golden chat renders, apply_chat_template ids).
#include "coordinator/api/model_front_end.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/api/request_validation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/test_models.h"

namespace rami::api {
namespace {

using nlohmann::ordered_json;
using rami::v1::GenerateRequest;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// transformers 4.57.3, PreTrainedTokenizerFast(tokenizer_file=data/<tok>/tokenizer.json,
// chat_template=templates/<tmpl>.jinja, **special_tokens).apply_chat_template(messages,
// add_generation_prompt=True, tokenize=True, **extra) for the chat_golden.json cases below.
// qwen2 + qwen3, "single_user", enable_thinking=False:
const std::vector<int32_t> kQwen3SingleUserNoThinkingIds = {1201, 512, 198, 54,   71,  532,  1076,
                                                            220,  17,  10,  17,   30,  1202, 198,
                                                            1201, 934, 198, 1203, 393, 1204, 393};
// llama3 + llama3_1, "single_user" (one BOS: the template's, not the post-processor's too):
const std::vector<int32_t> kLlama31SingleUserIds = {
    1200, 257, 271, 273, 62,  362,  533, 322, 351, 258, 82,  88,   82,  83,  68,   76,
    257,  265, 62,  362, 533, 322,  351, 258, 400, 34,  84,  83,   83,  450, 220,  42,
    77,   701, 448, 67,  70,  68,   220, 35,  545, 68,  25,  220,  35,  68,  397,  76,
    65,   322, 220, 17,  15,  17,   18,  198, 51,  78,  67,  1036, 220, 35,  545,  68,
    25,   220, 17,  21,  220, 41,   84,  75,  220, 17,  15,  17,   19,  400, 1201, 257,
    271,  273, 62,  362, 533, 322,  351, 258, 525, 257, 265, 62,   362, 533, 322,  351,
    258,  400, 54,  71,  545, 1104, 220, 17,  10,  17,  30,  1201, 257, 271, 273,  62,
    362,  533, 322, 351, 258, 961,  257, 265, 62,  362, 533, 322,  351, 258, 400};

const ordered_json& ChatGolden(const std::string& tmpl, const std::string& conversation,
                               const ordered_json& extra) {
  static const ordered_json* cases = new ordered_json(rami::testing::ReadOrderedJsonFile(
      rami::testing::GoldenTokenizerDir() + "/data/chat_golden.json"));
  for (const ordered_json& c : *cases) {
    if (c["template"] == tmpl && c["conversation"] == conversation &&
        c["add_generation_prompt"] == true && c["tools"].is_null() && c["extra"] == extra) {
      return c;
    }
  }
  ADD_FAILURE() << "no golden case " << tmpl << "/" << conversation;
  static const ordered_json* none = new ordered_json();
  return *none;
}

// The request a client would send for a golden case: its messages, its extra variables as
// chat_template_kwargs (JSON text).
GenerateRequest ChatRequest(const ordered_json& golden) {
  GenerateRequest r;
  for (const ordered_json& m : golden["messages"]) {
    rami::v1::ChatMessage* message = r.mutable_messages()->add_messages();
    message->set_role(m["role"].get<std::string>());
    message->set_content(m["content"].get<std::string>());
  }
  for (const auto& [key, value] : golden["extra"].items()) {
    (*r.mutable_chat_template_kwargs())[key] = value.dump();
  }
  return r;
}

// The golden encode of `text` with special tokens (tokenizers' encode(add_special_tokens)).
std::vector<int32_t> GoldenPromptIds(const std::string& tokenizer, const std::string& text) {
  const nlohmann::json golden = rami::testing::ReadJsonFile(rami::testing::GoldenTokenizerDir() +
                                                            "/data/" + tokenizer + "/golden.json");
  for (const nlohmann::json& c : golden["encode"]) {
    if (c["text"] == text) return c["ids_special"].get<std::vector<int32_t>>();
  }
  ADD_FAILURE() << "no golden encode of " << text;
  return {};
}

TEST(ModelFrontEndTest, LoadsATokenizerlessCheckpoint) {
  // The tiny DMS checkpoint's configs, without any tokenizer files.
  const std::string source = std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/qwen3_dms";
  const std::string dir = testing::ProcessTempDir() + "/qwen3_dms";
  std::filesystem::create_directories(dir);
  for (const char* file : {"config.json", "generation_config.json"}) {
    std::filesystem::copy_file(source + "/" + file, dir + "/" + file,
                               std::filesystem::copy_options::overwrite_existing);
  }
  auto model = ModelFrontEnd::Load(dir + "/");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->name(), "qwen3_dms");
  EXPECT_EQ(model->vocab_size(), 256);
  EXPECT_EQ(model->max_context(), 512);
  EXPECT_THAT(model->eos_token_ids(), IsEmpty());  // its configs set none
  EXPECT_EQ(model->tokenizer(), nullptr);
  EXPECT_FALSE(model->has_chat_template());
  GenerateRequest r;
  r.set_prompt("hello");
  EXPECT_EQ(model->InputIds(r).status().code(), absl::StatusCode::kFailedPrecondition);
  r.mutable_token_ids()->add_ids(255);
  EXPECT_THAT(*model->InputIds(r), ElementsAre(255));

  // The checkpoint itself, whatever tokenizer files it carries.
  auto committed = ModelFrontEnd::Load(source);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->name(), "qwen3_dms");
  EXPECT_EQ(committed->vocab_size(), 256);
}

TEST(ModelFrontEndTest, LoadsTokenizerTemplateAndEos) {
  ModelFrontEnd qwen = testing::LoadOrDie(testing::QwenModelDir());
  EXPECT_EQ(qwen.name(), "qwen");
  EXPECT_EQ(qwen.vocab_size(), 1216);
  EXPECT_EQ(qwen.max_context(), 128);
  EXPECT_THAT(qwen.eos_token_ids(), ElementsAre(1202, 1200));  // generation_config.json
  EXPECT_THAT(qwen.config_eos_token_ids(), IsEmpty());         // config.json has none
  EXPECT_NE(qwen.tokenizer(), nullptr);
  EXPECT_TRUE(qwen.has_chat_template());

  ModelFrontEnd llama = testing::LoadOrDie(testing::Llama3ModelDir());
  EXPECT_THAT(llama.eos_token_ids(), ElementsAre(1201));  // config.json
  EXPECT_THAT(llama.config_eos_token_ids(), ElementsAre(1201));
  auto named = ModelFrontEnd::Load(testing::Llama3ModelDir(), "llama-3.1-tiny");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->name(), "llama-3.1-tiny");
}

TEST(ModelFrontEndTest, LoadErrorsNameTheFile) {
  auto missing = ModelFrontEnd::Load(testing::ProcessTempDir() + "/no_such_model");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("config.json"));

  // A tokenizer whose ids do not fit the model's embedding table.
  const std::string small = testing::MakeModelDir("small_vocab", "qwen2", "",
                                                  nlohmann::json::object(), {{"vocab_size", 1000}});
  auto too_small = ModelFrontEnd::Load(small);
  EXPECT_EQ(too_small.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_small.status().message()), HasSubstr("vocab_size 1000"));

  const std::string bad_eos =
      testing::MakeModelDir("bad_eos", "qwen2", "", nlohmann::json::object(),
                            {{"vocab_size", 1216}}, {{"eos_token_id", {1202, 5000}}});
  auto eos = ModelFrontEnd::Load(bad_eos);
  EXPECT_THAT(std::string(eos.status().message()),
              HasSubstr("generation_config.json eos_token_id: expected token ids in [0, 1216)"));
}

TEST(ModelFrontEndTest, PromptIsEncodedWithSpecialTokensAsHuggingFaceDoes) {
  for (const auto& [dir, tokenizer] : {std::pair{testing::QwenModelDir(), "qwen2"},
                                       std::pair{testing::Llama3ModelDir(), "llama3"}}) {
    ModelFrontEnd model = testing::LoadOrDie(dir);
    GenerateRequest r;
    r.set_prompt("Hello world");
    auto v = ValidateRequest(r, model, ServerLimits(), absl::UnixEpoch());
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->prompt_token_ids, GoldenPromptIds(tokenizer, "Hello world")) << tokenizer;
  }
  // Llama 3's post-processor adds BOS to a plain prompt.
  EXPECT_THAT(GoldenPromptIds("llama3", "Hello world"), ElementsAre(1200, 442, 437));
}

TEST(ModelFrontEndTest, Qwen3ChatMatchesTransformers) {
  ModelFrontEnd qwen = testing::LoadOrDie(testing::QwenModelDir());
  const ordered_json& golden = ChatGolden("qwen3", "single_user", {{"enable_thinking", false}});
  GenerateRequest r = ChatRequest(golden);
  ASSERT_EQ(r.chat_template_kwargs().at("enable_thinking"), "false");
  auto text = qwen.RenderChat(r);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, golden["output"].get<std::string>());
  EXPECT_THAT(*text, HasSubstr("<|im_start|>assistant\n<think>\n\n</think>\n\n"));

  auto v = ValidateRequest(r, qwen, ServerLimits(), absl::UnixEpoch());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->prompt_token_ids, kQwen3SingleUserNoThinkingIds);
  EXPECT_EQ(v->stopping.max_tokens, 128 - 21);  // the default, shrunk to the 128-token context
  EXPECT_THAT(v->stopping.stop_token_ids, ElementsAre(1200, 1202));
}

TEST(ModelFrontEndTest, ChatTemplateKwargsChangeTheRender) {
  ModelFrontEnd qwen = testing::LoadOrDie(testing::QwenModelDir());
  for (const ordered_json& extra :
       {ordered_json::object(), ordered_json{{"enable_thinking", true}}}) {
    const ordered_json& golden = ChatGolden("qwen3", "multi_turn", extra);
    GenerateRequest r = ChatRequest(golden);
    auto text = qwen.RenderChat(r);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, golden["output"].get<std::string>()) << extra.dump();
    auto ids = qwen.InputIds(r);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, *qwen.tokenizer()->Encode(*text, /*add_special_tokens=*/false));
  }
}

TEST(ModelFrontEndTest, Llama31ChatHasOneBos) {
  ModelFrontEnd llama = testing::LoadOrDie(testing::Llama3ModelDir());
  const ordered_json& golden = ChatGolden("llama3_1", "single_user", ordered_json::object());
  GenerateRequest r = ChatRequest(golden);
  auto text = llama.RenderChat(r);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, golden["output"].get<std::string>());
  auto v = ValidateRequest(r, llama, ServerLimits(), absl::UnixEpoch());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->prompt_token_ids, ElementsAreArray(kLlama31SingleUserIds));
  EXPECT_EQ(std::count(v->prompt_token_ids.begin(), v->prompt_token_ids.end(), 1200), 1);
}

TEST(ModelFrontEndTest, TemplateErrorsAreInvalidArgument) {
  auto tok =
      tokenizer::Tokenizer::FromDirectory(rami::testing::GoldenTokenizerDir() + "/data/qwen2");
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto tmpl = chat::ChatTemplate::FromSource(
      "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be user') }}"
      "{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}",
      {});
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  ModelFrontEnd model(ModelSpec{"strict", 1216, 128, {}, {}}, std::move(*tok), std::move(*tmpl));
  GenerateRequest r;
  rami::v1::ChatMessage* m = r.mutable_messages()->add_messages();
  m->set_role("system");
  m->set_content("hi");
  auto ids = model.InputIds(r);
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ids.status().message()), HasSubstr("messages: chat template: "));
  EXPECT_THAT(std::string(ids.status().message()), HasSubstr("first message must be user"));
  m->set_role("user");
  m->set_content("");
  ids = model.InputIds(r);
  EXPECT_THAT(std::string(ids.status().message()), HasSubstr("rendered an empty prompt"));
}

TEST(ModelFrontEndTest, TokenizeAndDetokenizeFollowTheGenerateRules) {
  ModelFrontEnd qwen = testing::LoadOrDie(testing::QwenModelDir());
  rami::v1::TokenizeRequest t;
  t.set_prompt("hello world");
  absl::StatusOr<std::vector<int32_t>> ids = Tokenize(t, qwen);
  ASSERT_TRUE(ids.ok()) << ids.status();
  GenerateRequest g;
  g.set_prompt("hello world");
  EXPECT_EQ(*ids, *qwen.InputIds(g));  // exactly what a job's prompt would be
  rami::v1::DetokenizeRequest d;
  d.mutable_token_ids()->Assign(ids->begin(), ids->end());
  EXPECT_EQ(*Detokenize(d, qwen), qwen.tokenizer()->Decode(*ids));
  EXPECT_THAT(*Detokenize(d, qwen), HasSubstr("hello world"));

  t.set_model("other");
  EXPECT_THAT(std::string(Tokenize(t, qwen).status().message()),
              HasSubstr("model: unknown model \"other\""));
  EXPECT_THAT(std::string(Tokenize(rami::v1::TokenizeRequest(), qwen).status().message()),
              HasSubstr("input: one of prompt or messages"));
  d.add_token_ids(1216);
  EXPECT_THAT(std::string(Detokenize(d, qwen).status().message()),
              HasSubstr("is outside the vocabulary [0, 1216)"));
  EXPECT_EQ(Detokenize(rami::v1::DetokenizeRequest(), testing::TinyModel()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace rami::api
