// Malformed tokenizer.json, tokenizer_config.json and chat templates give clear errors
// (naming the field or template line), never a crash; plus a few direct behaviours
// (special tokens from the config, stop ids, streaming of split characters).
#include <string>

#include "coordinator/chat/chat_template.h"
#include "coordinator/chat/jinja_template.h"
#include "coordinator/tokenizer/incremental_decoder.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_data.h"

namespace rami::tokenizer {
namespace {

using ::testing::HasSubstr;

std::string Qwen2Json() {
  return rami::testing::ReadTextFile(rami::testing::GoldenTokenizerDir() +
                                     "/data/qwen2/tokenizer.json");
}

std::string ErrorOf(std::string_view tok, std::string_view config = "", std::string_view gen = "") {
  auto t = Tokenizer::FromJson(tok, config, gen);
  return t.ok() ? "ok" : std::string(t.status().message());
}

TEST(MalformedTokenizer, ClearErrors) {
  EXPECT_THAT(ErrorOf("{not json"), HasSubstr("tokenizer.json: not valid JSON"));
  EXPECT_THAT(ErrorOf("[1,2]"), HasSubstr("expected a JSON object"));
  EXPECT_THAT(ErrorOf(R"({"model": {"type": "Unigram"}})"), HasSubstr("only BPE"));
  EXPECT_THAT(ErrorOf(R"({"model": {"type": "BPE", "vocab": [], "merges": []}})"),
              HasSubstr("model.vocab"));
  EXPECT_THAT(ErrorOf(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})"),
              HasSubstr("model.merges[0]"));
  EXPECT_THAT(
      ErrorOf(
          R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}})"),
      HasSubstr("unk_token"));
  const std::string base = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, )";
  EXPECT_THAT(ErrorOf(base + R"("normalizer": {"type": "Fancy"}})"),
              HasSubstr("normalizer type \"Fancy\""));
  EXPECT_THAT(ErrorOf(base + R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(["}}})"),
              HasSubstr("pre_tokenizer.pattern"));
  EXPECT_THAT(ErrorOf(base + R"("decoder": {"type": "Sequence", "decoders": [{"type": "Nope"}]}})"),
              HasSubstr("decoder.decoders[0]"));
  EXPECT_THAT(ErrorOf(base + R"("added_tokens": [{"id": "x"}]})"), HasSubstr("added_tokens[0]"));
  // Fields of the wrong JSON type are errors too, not exceptions.
  EXPECT_THAT(ErrorOf(base + R"("normalizer": {"type": "Strip", "strip_left": "yes"}})"),
              HasSubstr("wrong JSON type"));
  EXPECT_THAT(ErrorOf(base + R"("post_processor": {"type": "RobertaProcessing"}})"),
              HasSubstr("post_processor.cls"));
  EXPECT_THAT(ErrorOf(base + R"("decoder": {"type": "Replace", "pattern": {"String": 1}}})"),
              HasSubstr("decoder.content"));
  EXPECT_THAT(ErrorOf(Qwen2Json(), R"({"eos_token": "<|nope|>"})"), HasSubstr("eos_token"));
  EXPECT_THAT(ErrorOf(Qwen2Json(), "{}", R"({"eos_token_id": "x"})"), HasSubstr("eos_token_id"));
  auto missing = Tokenizer::FromDirectory("/nonexistent/model");
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("/nonexistent/model/tokenizer.json"));
}

TEST(TokenizerConfig, SpecialTokensAndStopIds) {
  auto tok = Tokenizer::FromJson(
      Qwen2Json(), R"({"eos_token": {"content": "<|im_end|>"}, "pad_token": "<|endoftext|>"})",
      R"({"eos_token_id": [1202, 1204]})");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const SpecialTokens& s = (*tok)->special_tokens();
  EXPECT_EQ(s.eos_id, (*tok)->TokenToId("<|im_end|>"));
  EXPECT_EQ(s.pad_id, (*tok)->TokenToId("<|endoftext|>"));
  EXPECT_EQ(s.stop_ids, (std::vector<int32_t>{1202, 1204}));
  EXPECT_FALSE((*tok)->Encode("\xFF bad utf8").ok());
}

// transformers' LlamaTokenizerFast rebuilds the post-processor from add_bos_token /
// add_eos_token; other tokenizer classes keep tokenizer.json's TemplateProcessing.
TEST(TokenizerConfig, LlamaTokenizerFastAddBosAddEos) {
  const std::string llama2 = rami::testing::ReadTextFile(rami::testing::GoldenTokenizerDir() +
                                                         "/data/llama2/tokenizer.json");
  auto plain = Tokenizer::FromJson(llama2);
  ASSERT_TRUE(plain.ok()) << plain.status();
  const int32_t bos = (*plain)->TokenToId("<s>"), eos = (*plain)->TokenToId("</s>");
  const std::vector<int32_t> hi = *(*plain)->Encode("hi", false);
  std::vector<int32_t> bos_hi = {bos};
  bos_hi.insert(bos_hi.end(), hi.begin(), hi.end());
  EXPECT_EQ(*(*plain)->Encode("hi", true), bos_hi);  // tokenizer.json's "<s> $A"

  auto eos_only =
      Tokenizer::FromJson(llama2, R"({"tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>",
                  "eos_token": "</s>", "add_bos_token": false, "add_eos_token": true})");
  ASSERT_TRUE(eos_only.ok()) << eos_only.status();
  std::vector<int32_t> hi_eos = hi;
  hi_eos.push_back(eos);
  EXPECT_EQ(*(*eos_only)->Encode("hi", true), hi_eos);

  auto other_class = Tokenizer::FromJson(
      llama2, R"({"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": false})");
  ASSERT_TRUE(other_class.ok()) << other_class.status();
  EXPECT_EQ(*(*other_class)->Encode("hi", true), bos_hi);
}

TEST(IncrementalDecoder, HoldsSplitCharacterUntilComplete) {
  auto tok = Tokenizer::FromJson(Qwen2Json());
  ASSERT_TRUE(tok.ok());
  // Byte-level tokens of "€" (E2 82 AC) one byte each: nothing until the last byte.
  const std::string euro = "\xE2\x82\xAC";
  std::vector<int32_t> ids;
  // Find the byte-level tokens through the vocabulary's byte alphabet instead.
  ids.clear();
  for (unsigned char b : euro) {
    for (int32_t id = 0; id < (*tok)->vocab_size(); ++id) {
      if ((*tok)->DecodeBytes(&id, 1, false) == std::string(1, static_cast<char>(b))) {
        ids.push_back(id);
        break;
      }
    }
  }
  ASSERT_EQ(ids.size(), 3u);
  IncrementalDecoder stream(tok->get(), false);
  EXPECT_EQ(stream.Step(ids[0]), "");
  EXPECT_EQ(stream.Step(ids[1]), "");
  EXPECT_EQ(stream.Step(ids[2]), euro);
  EXPECT_EQ(stream.Finish(), "");
  IncrementalDecoder cut(tok->get(), false);
  EXPECT_EQ(cut.Step(ids[0]), "");
  EXPECT_EQ(cut.Finish(), "\xEF\xBF\xBD");  // an unfinished character ends as U+FFFD
}

TEST(MalformedTemplate, LoadErrorsNameTheConstruct) {
  jinja::LexOptions opt;
  auto err = [&](const std::string& src) {
    auto t = jinja::Template::Parse(src, opt);
    return t.ok() ? std::string("ok") : std::string(t.status().message());
  };
  EXPECT_THAT(err("{% include 'x.j2' %}"), HasSubstr("unsupported tag {% include %}"));
  EXPECT_THAT(err("{{ x | frobnicate }}"), HasSubstr("unknown filter 'frobnicate'"));
  EXPECT_THAT(err("{% if x is weird %}{% endif %}"), HasSubstr("unknown test 'weird'"));
  EXPECT_THAT(err("line\n{% for x in y %}"), HasSubstr("template line 2: missing {% endfor %}"));
  EXPECT_THAT(err("{{ 'unterminated }}"), HasSubstr("unterminated string"));
  EXPECT_THAT(err("{{ x "), HasSubstr("unterminated {{"));
  EXPECT_THAT(err("{% endif %}"), HasSubstr("unsupported tag {% endif %}"));
}

// Found by tests/fuzz (chat_template): `x[]` parsed into a subscript with no index, which
// rendering dereferenced (a null pointer).
TEST(MalformedTemplate, EmptySubscriptIsASyntaxError) {
  for (const std::string src : {"{{ xs[] }}", "{% set y = xs[] %}", "{{ f()[]|length }}"}) {
    auto t = jinja::Template::Parse(src, {});
    ASSERT_FALSE(t.ok()) << src;
    EXPECT_THAT(t.status().message(), HasSubstr("expected an expression inside '[]'")) << src;
  }
  auto slice = jinja::Template::Parse("{{ [1, 2, 3][:] }}", {});  // a slice may omit every part
  ASSERT_TRUE(slice.ok()) << slice.status();
  absl::StatusOr<std::string> out = slice->Render({});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "[1, 2, 3]");
}

TEST(MalformedTemplate, RuntimeErrorsAreStatuses) {
  auto render = [](const std::string& src) {
    auto t = jinja::Template::Parse(src, {});
    if (!t.ok()) return std::string(t.status().message());
    auto out = t->Render({});
    return out.ok() ? *out : std::string(out.status().message());
  };
  EXPECT_THAT(render("{{ raise_exception('bad role') }}"), HasSubstr("bad role"));
  EXPECT_THAT(render("{{ x.y }}"), HasSubstr("'x' is undefined"));
  EXPECT_THAT(render("{{ 1 + 'a' }}"), HasSubstr("unsupported operand"));
  EXPECT_THAT(render("{{ [1].append(2) }}"), HasSubstr("not allowed"));
  EXPECT_THAT(
      render("{% for i in range(1001) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"),
      HasSubstr("too many loop iterations"));
  EXPECT_THAT(render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"),
              HasSubstr("nested too deeply"));
}

// str methods and the filters of the same name follow Python / jinja2.
TEST(JinjaStrings, CaseAndStripLikePython) {
  auto t = jinja::Template::Parse(
      "{{ ' hello World'.capitalize() }}|{{ 'hello world' | capitalize }}|{{ 'a1b c'.title() }}|"
      "{{ '  x  '.strip() }}|{{ 'xxyxx'.rstrip('x') }}|{{ '  y ' | trim }}",
      {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t->Render({}), " hello world|Hello world|A1B C|x|xxy|y");
}

TEST(ChatTemplateConfig, FromTokenizerConfig) {
  nlohmann::json config = {
      {"chat_template", "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"},
      {"bos_token", {{"content", "<s>"}}}};
  auto t = chat::ChatTemplate::FromTokenizerConfig(config);
  ASSERT_TRUE(t.ok()) << t.status();
  chat::ChatTemplateInput input;
  input.messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  EXPECT_EQ(*t->Apply(input), "<s>hi");
  EXPECT_FALSE(chat::ChatTemplate::FromTokenizerConfig({{"chat_template", 3}}).ok());
  EXPECT_FALSE(chat::ChatTemplate::FromTokenizerConfig(nlohmann::json::object()).ok());
  auto broken = chat::ChatTemplate::FromTokenizerConfig({{"chat_template", "{% if %}"}});
  EXPECT_THAT(std::string(broken.status().message()), HasSubstr("chat_template: template line 1"));
}

}  // namespace
}  // namespace rami::tokenizer
