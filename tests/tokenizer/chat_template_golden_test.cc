// Golden tests: rami's Jinja interpreter against transformers' apply_chat_template on the
// real Qwen3, Qwen2.5, Llama 3.1 and DeepSeek-V3.1 templates, and against jinja2 on a table
// of snippets (whitespace control, filters, tests, loops, macros).
#include <map>
#include <string>

#include "coordinator/chat/chat_template.h"
#include "coordinator/chat/jinja_template.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_data.h"

namespace rami::chat {
namespace {

using json = nlohmann::ordered_json;

TEST(ChatTemplateGolden, RealTemplatesMatchTransformers) {
  const std::string dir = rami::testing::GoldenTokenizerDir();
  const json cases = rami::testing::ReadOrderedJsonFile(dir + "/data/chat_golden.json");
  ASSERT_GT(cases.size(), 100u);
  std::map<std::string, std::string> sources;
  int checked = 0;
  for (const json& c : cases) {
    const std::string name = c["template"];
    if (!sources.count(name)) {
      sources[name] = rami::testing::ReadTextFile(dir + "/templates/" + name + ".jinja");
    }
    std::map<std::string, std::string> specials;
    for (const auto& [k, v] : c["special_tokens"].items()) specials[k] = v.get<std::string>();
    auto tmpl = ChatTemplate::FromSource(sources[name], specials);
    ASSERT_TRUE(tmpl.ok()) << name << ": " << tmpl.status();
    ChatTemplateInput input;
    input.messages = c["messages"];
    input.tools = c["tools"];
    input.add_generation_prompt = c["add_generation_prompt"];
    input.extra = c["extra"];
    auto out = tmpl->Apply(input);
    const std::string label = name + "/" + c["conversation"].get<std::string>() +
                              " gen=" + c["add_generation_prompt"].dump() +
                              " extra=" + c["extra"].dump() +
                              " tools=" + (c["tools"].is_null() ? "no" : "yes");
    if (c["error"].is_null()) {
      ASSERT_TRUE(out.ok()) << label << ": " << out.status();
      EXPECT_EQ(*out, c["output"].get<std::string>()) << label;
    } else {
      EXPECT_FALSE(out.ok()) << label << " should fail like transformers: " << c["error"];
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size()));
}

TEST(JinjaSnippetGolden, MatchesJinja2) {
  const json cases = rami::testing::ReadOrderedJsonFile(rami::testing::GoldenTokenizerDir() +
                                                        "/data/jinja_snippets.json");
  for (const json& c : cases) {
    jinja::LexOptions options;
    options.trim_blocks = options.lstrip_blocks = c["env"] == "hf";
    const std::string src = c["template"];
    auto t = jinja::Template::Parse(src, options);
    EXPECT_TRUE(t.ok()) << src << ": " << t.status();
    if (!t.ok()) continue;
    auto ctx = jinja::Value::FromJson(c["context"]);
    auto out = t->Render(ctx.AsDict());
    if (c["error"].is_null()) {
      EXPECT_TRUE(out.ok()) << src << ": " << out.status();
      if (out.ok()) {
        EXPECT_EQ(*out, c["output"].get<std::string>()) << src;
      }
    } else {
      EXPECT_FALSE(out.ok()) << src;
    }
  }
}

}  // namespace
}  // namespace rami::chat
