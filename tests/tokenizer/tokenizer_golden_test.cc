// Golden tests: rami's tokenizer against Hugging Face `tokenizers` on small tokenizers trained
// and configured like the real Qwen2, Llama 3, DeepSeek-V3, GPT-2 and Llama 2 ones.
#include <string>
#include <vector>

#include "coordinator/tokenizer/incremental_decoder.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_data.h"

namespace rami::tokenizer {
namespace {

using nlohmann::json;

class TokenizerGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string dir = rami::testing::GoldenTokenizerDir() + "/data/" + GetParam();
    auto tok = Tokenizer::FromDirectory(dir);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = std::move(tok).value();
    golden_ = rami::testing::ReadJsonFile(dir + "/golden.json");
  }
  std::unique_ptr<Tokenizer> tokenizer_;
  json golden_;
};

std::string Show(const std::string& s) { return json(s).dump(); }

TEST_P(TokenizerGolden, EncodeMatches) {
  int failures = 0;
  for (const json& c : golden_["encode"]) {
    const std::string text = c["text"];
    auto ids = tokenizer_->Encode(text, false);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, c["ids"].get<std::vector<int32_t>>()) << "text " << Show(text);
    auto with_special = tokenizer_->Encode(text, true);
    EXPECT_EQ(*with_special, c["ids_special"].get<std::vector<int32_t>>()) << "text " << Show(text);
    failures += *ids != c["ids"].get<std::vector<int32_t>>();
    if (failures > 5) break;
  }
}

TEST_P(TokenizerGolden, DecodeOfEncodeMatches) {
  for (const json& c : golden_["encode"]) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer_->Decode(ids, false), c["decoded"].get<std::string>()) << Show(c["text"]);
    EXPECT_EQ(tokenizer_->Decode(ids, true), c["decoded_skip"].get<std::string>())
        << Show(c["text"]);
  }
}

TEST_P(TokenizerGolden, DecodeOfRandomIdsMatches) {
  for (const json& c : golden_["decode"]) {
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer_->Decode(ids, false), c["text"].get<std::string>()) << json(ids).dump();
    EXPECT_EQ(tokenizer_->Decode(ids, true), c["text_skip"].get<std::string>()) << json(ids).dump();
  }
}

// Streaming the ids one by one gives exactly the text of a full decode, and never a broken
// character before the end.
TEST_P(TokenizerGolden, IncrementalDecodeEqualsFullDecode) {
  for (const char* section : {"encode", "decode"}) {
    for (const json& c : golden_[section]) {
      const auto ids = c["ids"].get<std::vector<int32_t>>();
      for (bool skip : {false, true}) {
        IncrementalDecoder stream(tokenizer_.get(), skip);
        std::string text;
        for (int32_t id : ids) text += stream.Step(id);
        text += stream.Finish();
        EXPECT_EQ(text, tokenizer_->Decode(ids, skip)) << json(ids).dump();
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerGolden,
                         ::testing::Values("qwen2", "llama3", "deepseek_v3", "gpt2", "llama2",
                                           "llama2_metaspace"));

}  // namespace
}  // namespace rami::tokenizer
