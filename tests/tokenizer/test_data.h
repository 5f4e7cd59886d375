// Paths and JSON loading shared by the tokenizer and chat-template tests; the golden files
// live in tests/golden_tokenizer/data (written by make_tokenizer_golden.py).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"

namespace rami::testing {

inline std::string GoldenTokenizerDir() {
  return std::string(RAMI_SOURCE_DIR) + "/tests/golden_tokenizer";
}

inline std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline nlohmann::json ReadJsonFile(const std::string& path) {
  return nlohmann::json::parse(ReadTextFile(path));
}

inline nlohmann::ordered_json ReadOrderedJsonFile(const std::string& path) {
  return nlohmann::ordered_json::parse(ReadTextFile(path));
}

}  // namespace rami::testing
