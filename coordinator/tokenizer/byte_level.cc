// GPT-2 byte-level mapping (see byte_level.h).
#include "coordinator/tokenizer/byte_level.h"

#include "coordinator/tokenizer/utf8.h"

namespace rami::tokenizer {

const ByteLevelMap& ByteLevelMap::Get() {
  static const ByteLevelMap* map = new ByteLevelMap();
  return *map;
}

ByteLevelMap::ByteLevelMap() {
  char_to_byte_.fill(-1);
  // Printable Latin-1 bytes stand for themselves; the rest get code points 256, 257, ...
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const int cp = printable ? b : next++;
    Utf8Append(static_cast<char32_t>(cp), &byte_to_char_[b]);
    char_to_byte_[cp] = b;
  }
}

std::string ByteLevelMap::EncodeBytes(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) out.append(byte_to_char_[b]);
  return out;
}

bool ByteLevelMap::DecodeToken(std::string_view token, std::string* out) const {
  const size_t mark = out->size();
  size_t i = 0;
  while (i < token.size()) {
    size_t len = 0;
    const char32_t cp = Utf8Decode(token, i, &len);
    if (cp >= char_to_byte_.size() || char_to_byte_[cp] < 0) {
      out->resize(mark);
      return false;
    }
    out->push_back(static_cast<char>(char_to_byte_[cp]));
    i += len;
  }
  return true;
}

}  // namespace rami::tokenizer
