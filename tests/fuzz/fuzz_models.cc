// The request fuzzers' models (fuzz_models.h), built once per process from the golden files.
#include "tests/fuzz/fuzz_models.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>

namespace rami::fuzz {
namespace {

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz_models: cannot read %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

api::ModelFrontEnd* MakeQwen() {
  const std::string golden = std::string(RAMI_SOURCE_DIR) + "/tests/golden_tokenizer";
  auto tokenizer =
      tokenizer::Tokenizer::FromJson(ReadFileOrDie(golden + "/data/qwen2/tokenizer.json"));
  auto chat = chat::ChatTemplate::FromSource(ReadFileOrDie(golden + "/templates/qwen3.jinja"),
                                             {{"eos_token", "<|im_end|>"}});
  if (!tokenizer.ok() || !chat.ok()) {
    std::fprintf(stderr, "fuzz_models: the golden qwen2 tokenizer or qwen3 template: %s %s\n",
                 tokenizer.status().ToString().c_str(), chat.status().ToString().c_str());
    std::abort();
  }
  // As tests/api/test_models.h's QwenModelDir: <|im_end|> = 1202, <|endoftext|> = 1200.
  return new api::ModelFrontEnd(api::ModelSpec{"qwen", 1216, 128, {1202, 1200}, {1202}},
                                std::move(tokenizer).value(), std::move(chat).value());
}

}  // namespace

const api::ModelFrontEnd& TinyModel() {
  static const api::ModelFrontEnd* model =
      new api::ModelFrontEnd(api::ModelSpec{"qwen3_dms", 256, 512, {0}, {0}});
  return *model;
}

const api::ModelFrontEnd& QwenModel() {
  static const api::ModelFrontEnd* model = MakeQwen();
  return *model;
}

const api::ServerLimits& Limits() {
  static const api::ServerLimits* limits = new api::ServerLimits();
  return *limits;
}

}  // namespace rami::fuzz
