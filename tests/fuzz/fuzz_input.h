// Splitting one fuzzer input into parts: the parts are separated by NUL bytes, which none of
// the fuzzed text formats (JSON, Jinja, UTF-8 prompts) needs, so seed files stay readable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace rami::fuzz {

// At most `max_parts` parts; the last one keeps any further NULs.
inline std::vector<std::string_view> SplitInput(const uint8_t* data, size_t size,
                                                size_t max_parts) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t nul = rest.find('\0');
    if (nul == std::string_view::npos) break;
    parts.push_back(rest.substr(0, nul));
    rest.remove_prefix(nul + 1);
  }
  parts.push_back(rest);
  return parts;
}

}  // namespace rami::fuzz
