// Fuzzes tokenizer loading and use. Input: tokenizer.json NUL text [NUL tokenizer_config.json
// [NUL generation_config.json]]. A tokenizer that loads encodes the text (with and without
// special tokens), decodes the ids back (Decode, skip_special_tokens, streaming), and decodes
// ids made from the text's bytes, out-of-vocabulary ones included.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/tokenizer/incremental_decoder.h"
#include "coordinator/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

constexpr size_t kMaxTextBytes = 512;  // a short text: the load is what the input mostly is

void Exercise(const rami::tokenizer::Tokenizer& tokenizer, std::string_view text) {
  for (bool special : {false, true}) {
    auto ids = tokenizer.Encode(text, special);
    if (!ids.ok()) continue;
    (void)tokenizer.Decode(*ids, /*skip_special_tokens=*/false);
    (void)tokenizer.Decode(*ids, /*skip_special_tokens=*/true);
    rami::tokenizer::IncrementalDecoder stream(&tokenizer, /*skip_special_tokens=*/false);
    for (int32_t id : *ids) (void)stream.Step(id);
    (void)stream.Finish();
  }
  // Arbitrary ids: in range, past the vocabulary and negative.
  std::vector<int32_t> ids;
  for (unsigned char c : text) {
    ids.push_back(static_cast<int32_t>(c) * 5 - 16);
    ids.push_back(tokenizer.vocab_size() - 1 - c);
  }
  (void)tokenizer.Decode(ids, /*skip_special_tokens=*/false);
  for (int32_t id : ids) {
    (void)tokenizer.IdToToken(id);
    (void)tokenizer.IsSpecial(id);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string_view> parts = rami::fuzz::SplitInput(data, size, 4);
  const std::string_view text = parts.size() > 1 ? parts[1].substr(0, kMaxTextBytes)
                                                 : std::string_view("Hello, world! <|im_end|>");
  auto tokenizer = rami::tokenizer::Tokenizer::FromJson(parts[0], parts.size() > 2 ? parts[2] : "",
                                                        parts.size() > 3 ? parts[3] : "");
  if (!tokenizer.ok()) return 0;
  Exercise(**tokenizer, text);
  return 0;
}
