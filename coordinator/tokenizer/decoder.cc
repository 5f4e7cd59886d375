// tokenizer.json decoders (see decoder.h).
#include "coordinator/tokenizer/decoder.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/status_macros.h"
#include "coordinator/tokenizer/byte_level.h"
#include "coordinator/tokenizer/component_config.h"
#include "coordinator/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace rami::tokenizer {
namespace {

using nlohmann::json;

constexpr char kReplacementChar[] = "\xEF\xBF\xBD";

class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* pieces, bool) const override {
    const ByteLevelMap& map = ByteLevelMap::Get();
    std::string bytes;
    for (const std::string& p : *pieces) {
      if (!map.DecodeToken(p, &bytes)) bytes.append(p);
    }
    pieces->assign(1, std::move(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  explicit ReplaceDecoder(ReplaceRule rule) : rule_(std::move(rule)) {}
  void DecodeChain(std::vector<std::string>* pieces, bool) const override {
    for (std::string& p : *pieces) rule_.Apply(&p);
  }

 private:
  ReplaceRule rule_;
};

// "<0xAB>" -> 0xAB, or -1.
int ParseByteToken(const std::string& p) {
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  int value = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = p[k];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* pieces, bool keep_partial_tail) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    auto flush = [&](bool at_end) {
      if (count == 0) return;
      if (Utf8Valid(bytes) || (at_end && keep_partial_tail && IncompleteOnly(bytes))) {
        out.push_back(bytes);
      } else {
        for (size_t k = 0; k < count; ++k) out.emplace_back(kReplacementChar);  // one per byte
      }
      bytes.clear();
      count = 0;
    };
    for (std::string& p : *pieces) {
      const int b = ParseByteToken(p);
      if (b >= 0) {
        bytes.push_back(static_cast<char>(b));
        ++count;
      } else {
        flush(false);
        out.push_back(std::move(p));
      }
    }
    flush(true);
    *pieces = std::move(out);
  }

 private:
  // True when `bytes` is valid UTF-8 followed by an incomplete character.
  static bool IncompleteOnly(const std::string& bytes) {
    const size_t tail = Utf8IncompleteTail(bytes);
    return tail > 0 && Utf8Valid(std::string_view(bytes).substr(0, bytes.size() - tail));
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* pieces, bool) const override {
    std::string all;
    for (const std::string& p : *pieces) all.append(p);
    pieces->assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* pieces, bool) const override {
    for (std::string& p : *pieces) {
      size_t begin = 0, end = p.size();
      for (size_t k = 0; k < start_ && p.compare(begin, content_.size(), content_) == 0 &&
                         begin + content_.size() <= end;
           ++k) {
        begin += content_.size();
      }
      for (size_t k = 0; k < stop_ && end >= begin + content_.size() &&
                         p.compare(end - content_.size(), content_.size(), content_) == 0;
           ++k) {
        end -= content_.size();
      }
      p = p.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* pieces, bool) const override {
    for (size_t i = 0; i < pieces->size(); ++i) {
      std::string& p = (*pieces)[i];
      p = absl::StrReplaceAll(p, {{replacement_, " "}});
      if (i == 0 && strip_first_ && !p.empty() && p[0] == ' ') p.erase(0, 1);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts)
      : parts_(std::move(parts)) {}
  void DecodeChain(std::vector<std::string>* pieces, bool keep_partial_tail) const override {
    for (const auto& part : parts_) part->DecodeChain(pieces, keep_partial_tail);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(const json& config, const std::string& where) {
  if (config.is_null()) return std::unique_ptr<Decoder>();
  RAMI_ASSIGN_OR_RETURN(const std::string type, ComponentType(config, where));
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    RAMI_ASSIGN_OR_RETURN(ReplaceRule rule, ReplaceRule::FromJson(config, where));
    return std::make_unique<ReplaceDecoder>(std::move(rule));
  }
  if (type == "Strip") {
    const std::string content = config.value("content", std::string(" "));
    return std::make_unique<StripDecoder>(content, config.value("start", 0),
                                          config.value("stop", 0));
  }
  if (type == "Metaspace") {
    RAMI_ASSIGN_OR_RETURN(MetaspaceConfig metaspace, ParseMetaspace(config, where));
    return std::make_unique<MetaspaceDecoder>(metaspace.replacement,
                                              metaspace.prepend_scheme != PrependScheme::kNever);
  }
  if (type == "Sequence") {
    RAMI_ASSIGN_OR_RETURN(auto parts,
                          MakeSequence<Decoder>(config, "decoders", where, MakeDecoder));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  return absl::UnimplementedError(
      absl::StrCat(where, ": decoder type \"", type, "\" is not supported"));
}

}  // namespace rami::tokenizer
