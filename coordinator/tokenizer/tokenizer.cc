// Tokenizer loading, encoding and decoding (see tokenizer.h).
#include "coordinator/tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "coordinator/tokenizer/utf8.h"
#include "nlohmann/json.hpp"

namespace rami::tokenizer {
namespace {

using nlohmann::json;

absl::StatusOr<json> ParseJson(std::string_view text, const std::string& name) {
  json parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded())
    return absl::InvalidArgumentError(absl::StrCat(name, ": not valid JSON"));
  if (!parsed.is_object())
    return absl::InvalidArgumentError(absl::StrCat(name, ": expected a JSON object"));
  return parsed;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (required) return absl::NotFoundError(absl::StrCat("cannot open ", path));
    return std::string();
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Appends the ids a TemplateProcessing / Roberta / Bert processor puts around one sequence.
absl::Status ParsePostProcessor(const json& config, std::vector<int32_t>* prefix,
                                std::vector<int32_t>* suffix, const std::string& where) {
  if (config.is_null()) return absl::OkStatus();
  const std::string type = config.value("type", std::string());
  if (type == "ByteLevel") return absl::OkStatus();  // offsets only
  if (type == "Sequence") {
    const json& parts = config.contains("processors") ? config["processors"] : json::array();
    for (size_t i = 0; i < parts.size(); ++i) {
      RAMI_RETURN_IF_ERROR(ParsePostProcessor(parts[i], prefix, suffix,
                                              absl::StrCat(where, ".processors[", i, "]")));
    }
    return absl::OkStatus();
  }
  if (type == "TemplateProcessing") {
    if (!config.contains("single") || !config["single"].is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".single: expected an array"));
    }
    const json& specials =
        config.contains("special_tokens") ? config["special_tokens"] : json::object();
    bool seen_sequence = false;
    for (const json& item : config["single"]) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id")) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".single: unknown item ", item.dump()));
      }
      const std::string name = item["SpecialToken"]["id"].get<std::string>();
      if (!specials.contains(name) || !specials[name].contains("ids")) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ".special_tokens: \"", name, "\" missing"));
      }
      for (const json& id : specials[name]["ids"])
        (seen_sequence ? suffix : prefix)->push_back(id.get<int32_t>());
    }
    return absl::OkStatus();
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    for (const char* key : {"cls", "sep"}) {  // ["<s>", 0]
      if (!config.contains(key) || !config[key].is_array() || config[key].size() != 2 ||
          !config[key][1].is_number_integer()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": expected [token, id]"));
      }
    }
    prefix->push_back(config["cls"][1].get<int32_t>());
    suffix->push_back(config["sep"][1].get<int32_t>());
    return absl::OkStatus();
  }
  return absl::UnimplementedError(
      absl::StrCat(where, ": post-processor type \"", type, "\" is not supported"));
}

// tokenizer_config.json writes special tokens as "text" or {"content": "text", ...}.
std::optional<std::string> TokenText(const json& config, const char* key) {
  if (!config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromDirectory(const std::string& dir) {
  RAMI_ASSIGN_OR_RETURN(std::string tok, ReadFile(dir + "/tokenizer.json", true));
  RAMI_ASSIGN_OR_RETURN(std::string config, ReadFile(dir + "/tokenizer_config.json", false));
  RAMI_ASSIGN_OR_RETURN(std::string gen, ReadFile(dir + "/generation_config.json", false));
  auto result = FromJson(tok, config, gen);
  if (!result.ok()) {
    return absl::Status(result.status().code(), absl::StrCat(dir, ": ", result.status().message()));
  }
  return result;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                               std::string_view config_json,
                                                               std::string_view generation_json) {
  // The builders check every shape they index into; nlohmann still throws when a field they
  // read with a default (value(), get<T>()) has the wrong type. No exception leaves here.
  try {
    return Load(tokenizer_json, config_json, generation_json);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer files: a field has the wrong JSON type (", e.what(), ")"));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(std::string_view tokenizer_json,
                                                           std::string_view config_json,
                                                           std::string_view generation_json) {
  RAMI_ASSIGN_OR_RETURN(json root, ParseJson(tokenizer_json, "tokenizer.json"));
  auto tok = std::unique_ptr<Tokenizer>(new Tokenizer());
  const json null;
  auto field = [&](const char* key) -> const json& {
    return root.contains(key) ? root[key] : null;
  };
  const json& model = field("model");
  if (!model.is_object() || model.value("type", std::string("BPE")) != "BPE") {
    return absl::UnimplementedError(absl::StrCat(
        "tokenizer.json model.type \"", model.is_object() ? model.value("type", std::string()) : "",
        "\": only BPE is supported"));
  }
  RAMI_ASSIGN_OR_RETURN(tok->model_, BpeModel::FromJson(model));
  RAMI_ASSIGN_OR_RETURN(tok->normalizer_, MakeNormalizer(field("normalizer"), "normalizer"));
  RAMI_ASSIGN_OR_RETURN(tok->pre_tokenizer_,
                        MakePreTokenizer(field("pre_tokenizer"), "pre_tokenizer"));
  RAMI_ASSIGN_OR_RETURN(tok->decoder_, MakeDecoder(field("decoder"), "decoder"));
  RAMI_ASSIGN_OR_RETURN(tok->added_,
                        AddedVocabulary::FromJson(field("added_tokens"), tok->normalizer_.get()));
  RAMI_RETURN_IF_ERROR(ParsePostProcessor(field("post_processor"), &tok->prefix_ids_,
                                          &tok->suffix_ids_, "post_processor"));
  bool override_post = false;
  RAMI_RETURN_IF_ERROR(tok->LoadConfig(config_json, generation_json, &override_post));
  return tok;
}

absl::Status Tokenizer::LoadConfig(std::string_view config_json, std::string_view generation_json,
                                   bool* override_post_processor) {
  json config = json::object();
  if (!config_json.empty()) {
    RAMI_ASSIGN_OR_RETURN(config, ParseJson(config_json, "tokenizer_config.json"));
  }
  auto resolve = [this](const std::optional<std::string>& text, int32_t* id, const char* key) {
    if (!text.has_value()) return absl::OkStatus();
    *id = TokenToId(*text);
    if (*id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer_config.json ", key, " \"", *text, "\" is not in the vocabulary"));
    }
    return absl::OkStatus();
  };
  special_.bos_token = TokenText(config, "bos_token");
  special_.eos_token = TokenText(config, "eos_token");
  special_.pad_token = TokenText(config, "pad_token");
  special_.unk_token = TokenText(config, "unk_token");
  RAMI_RETURN_IF_ERROR(resolve(special_.bos_token, &special_.bos_id, "bos_token"));
  RAMI_RETURN_IF_ERROR(resolve(special_.eos_token, &special_.eos_id, "eos_token"));
  RAMI_RETURN_IF_ERROR(resolve(special_.pad_token, &special_.pad_id, "pad_token"));
  RAMI_RETURN_IF_ERROR(resolve(special_.unk_token, &special_.unk_id, "unk_token"));
  // transformers' LlamaTokenizerFast rebuilds the post-processor from add_bos_token /
  // add_eos_token (Llama 2, DeepSeek-V3); other classes keep tokenizer.json's.
  const std::string cls = config.value("tokenizer_class", std::string());
  *override_post_processor = cls == "LlamaTokenizerFast" || cls == "LlamaTokenizer";
  if (*override_post_processor) {
    prefix_ids_.clear();
    suffix_ids_.clear();
    if (config.value("add_bos_token", true) && special_.bos_id >= 0)
      prefix_ids_.push_back(special_.bos_id);
    if (config.value("add_eos_token", false) && special_.eos_id >= 0)
      suffix_ids_.push_back(special_.eos_id);
  }
  if (!generation_json.empty()) {
    RAMI_ASSIGN_OR_RETURN(json gen, ParseJson(generation_json, "generation_config.json"));
    if (gen.contains("eos_token_id")) {
      const json& eos = gen["eos_token_id"];
      if (eos.is_number_integer()) {
        special_.stop_ids.push_back(eos.get<int32_t>());
      } else if (eos.is_array()) {
        for (const json& id : eos) {
          if (!id.is_number_integer()) {
            return absl::InvalidArgumentError("generation_config.json eos_token_id: expected ints");
          }
          special_.stop_ids.push_back(id.get<int32_t>());
        }
      } else if (!eos.is_null()) {
        return absl::InvalidArgumentError(
            "generation_config.json eos_token_id: expected int or list");
      }
    }
  }
  if (special_.stop_ids.empty() && special_.eos_id >= 0)
    special_.stop_ids.push_back(special_.eos_id);
  return absl::OkStatus();
}

void Tokenizer::EncodePiece(std::string text, bool at_origin, std::vector<int32_t>* ids) const {
  if (normalizer_ != nullptr) normalizer_->Normalize(&text);
  std::vector<TextPiece> pieces;
  if (added_.has_normalized_tokens()) {
    for (const AddedSplit& s : added_.SplitNormalized(text)) {
      if (s.id >= 0) {
        // Flush what came before, then the token.
        if (pre_tokenizer_ != nullptr) pre_tokenizer_->PreTokenize(&pieces);
        for (const TextPiece& p : pieces) model_->Tokenize(p.text, ids);
        pieces.clear();
        ids->push_back(s.id);
      } else if (s.end > s.start) {
        pieces.push_back({text.substr(s.start, s.end - s.start), at_origin && s.start == 0});
      }
    }
  } else if (!text.empty()) {
    pieces.push_back({std::move(text), at_origin});
  }
  if (pre_tokenizer_ != nullptr) pre_tokenizer_->PreTokenize(&pieces);
  for (const TextPiece& p : pieces) model_->Tokenize(p.text, ids);
}

absl::StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text,
                                                       bool add_special_tokens) const {
  if (!Utf8Valid(text)) return absl::InvalidArgumentError("text to encode is not valid UTF-8");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special_tokens) ids = prefix_ids_;
  for (const AddedSplit& s : added_.SplitRaw(text)) {
    if (s.id >= 0) {
      ids.push_back(s.id);
    } else {
      EncodePiece(std::string(text.substr(s.start, s.end - s.start)), s.start == 0, &ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

std::string Tokenizer::DecodeBytes(const int32_t* ids, size_t n, bool skip_special_tokens) const {
  return DecodeImpl(ids, n, skip_special_tokens, /*keep_partial_tail=*/true);
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  return Utf8Lossy(DecodeImpl(ids.data(), ids.size(), skip_special_tokens, false));
}

std::string Tokenizer::DecodeImpl(const int32_t* ids, size_t n, bool skip_special_tokens,
                                  bool keep_partial_tail) const {
  std::vector<std::string> pieces;
  pieces.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string* token = IdToToken(ids[i]);
    if (token == nullptr || (skip_special_tokens && IsSpecial(ids[i]))) continue;
    pieces.push_back(*token);
  }
  if (decoder_ == nullptr) return absl::StrJoin(pieces, " ");
  decoder_->DecodeChain(&pieces, keep_partial_tail);
  return absl::StrJoin(pieces, "");
}

const std::string* Tokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* t = added_.FindById(id)) return &t->content;
  return model_->IdToToken(id);
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  if (const AddedToken* t = added_.FindByContent(token)) return t->id;
  return model_->TokenToId(token);
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const AddedToken* t = added_.FindById(id);
  return t != nullptr && t->special;
}

int32_t Tokenizer::vocab_size() const {
  int32_t n = model_->vocab_size();
  for (const AddedToken& t : added_.tokens()) n = std::max(n, t.id + 1);
  return n;
}

}  // namespace rami::tokenizer
