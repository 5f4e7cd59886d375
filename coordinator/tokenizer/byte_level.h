// The GPT-2 byte <-> printable-character mapping used by byte-level BPE (Llama 3, Qwen,
// DeepSeek): every byte is shown as one Unicode character so that BPE runs over text.
#pragma once

#include <array>
#include <string>
#include <string_view>

namespace rami::tokenizer {

class ByteLevelMap {
 public:
  static const ByteLevelMap& Get();

  // UTF-8 encoding of the character that stands for byte b.
  const std::string& Encode(unsigned char b) const { return byte_to_char_[b]; }

  // Maps every byte of `bytes` to its character.
  std::string EncodeBytes(std::string_view bytes) const;

  // Maps the characters of `token` back to bytes; false (out untouched) when some character
  // is not one of the 256, in which case HF decoders keep the token's own UTF-8 bytes.
  bool DecodeToken(std::string_view token, std::string* out) const;

 private:
  ByteLevelMap();
  std::array<std::string, 256> byte_to_char_;
  std::array<int, 512> char_to_byte_;  // code points used are all < 512; -1 when unused
};

}  // namespace rami::tokenizer
