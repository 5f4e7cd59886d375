// Models for the request front-end tests: a token-ids-only model shaped like the tiny DMS
// checkpoint, and model directories assembled in a temp folder from the golden tokenizers and
// real chat templates of tests/golden_tokenizer (the goldens carry no tokenizer_config.json).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/api/model_front_end.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/tokenizer/test_data.h"

namespace rami::api::testing {

// Like tests/golden/models/qwen3_dms (vocab 256, 512 positions), with EOS id 0.
inline ModelFrontEnd TinyModel() {
  return ModelFrontEnd(ModelSpec{"qwen3_dms", 256, 512, {0}, {0}});
}

// The `now` of every validation in these tests.
inline const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

// Token ids [1, 2, 3]: valid for every test model.
inline rami::v1::GenerateRequest BaseRequest() {
  rami::v1::GenerateRequest r;
  for (int id : {1, 2, 3}) r.mutable_token_ids()->add_ids(id);
  return r;
}

// Replaces the token ids with `count` ids (all < 200).
inline void SetTokens(rami::v1::GenerateRequest* r, int count) {
  r->mutable_token_ids()->clear_ids();
  for (int i = 0; i < count; ++i) r->mutable_token_ids()->add_ids(i % 200);
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// This test process's own folder under the test temp dir: ctest runs each test case in its own
// process, several at once, and model folders rewritten by one while another reads them made
// tests abort on half-written files.
inline std::string ProcessTempDir() {
  return ::testing::TempDir() + "/rami_api_test_" + std::to_string(::getpid());
}

// A model directory `name` under ProcessTempDir(): data/<tokenizer>/tokenizer.json, a
// tokenizer_config.json with `config` (plus the template's source as chat_template when
// `template_name` is not empty), config.json and, when not null, generation_config.json.
inline std::string MakeModelDir(const std::string& name, const std::string& tokenizer,
                                const std::string& template_name, nlohmann::json config,
                                const nlohmann::json& model_config,
                                const nlohmann::json& generation_config = nullptr) {
  const std::string golden = rami::testing::GoldenTokenizerDir();
  const std::string dir = ProcessTempDir() + "/" + name;
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(golden + "/data/" + tokenizer + "/tokenizer.json",
                             dir + "/tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  if (!template_name.empty()) {
    config["chat_template"] =
        rami::testing::ReadTextFile(golden + "/templates/" + template_name + ".jinja");
  }
  WriteFile(dir + "/tokenizer_config.json", config.dump());
  WriteFile(dir + "/config.json", model_config.dump());
  std::filesystem::remove(dir + "/generation_config.json");
  if (!generation_config.is_null()) {
    WriteFile(dir + "/generation_config.json", generation_config.dump());
  }
  return dir;
}

// The golden qwen2 tokenizer (<|im_end|> = 1202, <|endoftext|> = 1200) with the Qwen3 chat
// template, EOS from generation_config.json as Qwen3 ships it, and a 128-token context.
inline std::string QwenModelDir() {
  return MakeModelDir(
      "qwen", "qwen2", "qwen3", {{"eos_token", "<|im_end|>"}, {"pad_token", "<|endoftext|>"}},
      {{"vocab_size", 1216}, {"max_position_embeddings", 128}}, {{"eos_token_id", {1202, 1200}}});
}

// The golden llama3 tokenizer (BOS <|begin_of_text|> = 1200 added by its post-processor) with
// the Llama 3.1 template, which writes BOS itself; EOS <|eot_id|> from config.json.
inline std::string Llama3ModelDir() {
  return MakeModelDir(
      "llama3", "llama3", "llama3_1",
      {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}},
      {{"vocab_size", 1216}, {"max_position_embeddings", 512}, {"eos_token_id", 1201}});
}

inline ModelFrontEnd LoadOrDie(const std::string& dir) {
  absl::StatusOr<ModelFrontEnd> model = ModelFrontEnd::Load(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) std::abort();
  return std::move(model).value();
}

}  // namespace rami::api::testing
