// API keys: the key file's parser (JSON lines), SHA-256 hashing and constant-time lookup.
#include "coordinator/auth/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace rami::auth {
namespace {

using json = nlohmann::json;

constexpr int kMaxLimit = 1000000;

// The start of a value for messages: at most 40 characters of its JSON.
std::string Shown(const json& value) {
  std::string s = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 40) + "…" : s;
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '@' && c != '-') return false;
  }
  return true;
}

bool ValidToken(const std::string& token) {
  if (token.size() < 16 || token.size() > 512) return false;
  for (char c : token) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

absl::StatusOr<KeyHash> ParseHex(const std::string& hex) {
  KeyHash hash{};
  if (hex.size() != 2 * hash.size()) return absl::InvalidArgumentError("");
  for (size_t i = 0; i < hash.size(); ++i) {
    int byte = 0;
    for (char c : hex.substr(2 * i, 2)) {
      const int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
      if (digit < 0) return absl::InvalidArgumentError("");
      byte = byte * 16 + digit;
    }
    hash[i] = static_cast<uint8_t>(byte);
  }
  return hash;
}

// One line's object → a key; errors are "field: expected …, found …".
absl::StatusOr<ApiKey> ParseKey(const json& line) {
  ApiKey key;
  bool has_burst = false, has_key = false;
  for (const auto& [field, value] : line.items()) {
    if (field == "name") {
      if (!value.is_string() || !ValidName(value.get<std::string>())) {
        return absl::InvalidArgumentError(
            absl::StrCat("name: expected 1…64 of [A-Za-z0-9_.@-], found ", Shown(value)));
      }
      key.name = value.get<std::string>();
    } else if (field == "key" || field == "sha256") {
      if (has_key)
        return absl::InvalidArgumentError(absl::StrCat(field, ": give key or sha256, not both"));
      has_key = true;
      if (field == "key") {
        if (!value.is_string() || !ValidToken(value.get<std::string>())) {
          return absl::InvalidArgumentError(
              "key: expected 16…512 printable ASCII characters without spaces");  // never shown
        }
        key.hash = HashKey(value.get<std::string>());
      } else {
        absl::StatusOr<KeyHash> hash =
            value.is_string() ? ParseHex(value.get<std::string>())
                              : absl::StatusOr<KeyHash>(absl::InvalidArgumentError(""));
        if (!hash.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("sha256: expected 64 hex digits, found ", Shown(value)));
        }
        key.hash = *hash;
      }
    } else if (field == "admin") {
      if (!value.is_boolean()) {
        return absl::InvalidArgumentError(
            absl::StrCat("admin: expected true or false, found ", Shown(value)));
      }
      key.admin = value.get<bool>();
    } else if (field == "max_jobs" || field == "max_branches" || field == "burst") {
      if (!value.is_number_integer() || value.get<int64_t>() < (field == "burst" ? 1 : 0) ||
          value.get<int64_t>() > kMaxLimit) {
        return absl::InvalidArgumentError(absl::StrCat(field, ": expected an integer ",
                                                       field == "burst" ? 1 : 0, "…", kMaxLimit,
                                                       ", found ", Shown(value)));
      }
      const int n = value.get<int>();
      (field == "max_jobs"       ? key.limits.max_jobs
       : field == "max_branches" ? key.limits.max_branches
                                 : key.limits.burst) = n;
      has_burst |= field == "burst";
    } else if (field == "rps") {
      if (!value.is_number() || !(value.get<double>() >= 0) || value.get<double>() > kMaxLimit) {
        return absl::InvalidArgumentError(
            absl::StrCat("rps: expected a number 0…", kMaxLimit, ", found ", Shown(value)));
      }
      key.limits.rps = value.get<double>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          field.substr(0, 40),
          ": unknown field (name, key, sha256, admin, max_jobs, max_branches, rps, burst)"));
    }
  }
  if (key.name.empty()) return absl::InvalidArgumentError("name: required");
  if (!has_key) return absl::InvalidArgumentError("key: required (or sha256)");
  if (!has_burst) {
    key.limits.burst = static_cast<int>(std::max(1.0, std::ceil(2 * key.limits.rps)));
  }
  return key;
}

}  // namespace

KeyHash HashKey(absl::string_view token) {
  KeyHash hash;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), hash.data());
  return hash;
}

absl::StatusOr<std::vector<ApiKey>> ParseApiKeys(absl::string_view text, absl::string_view source) {
  std::vector<ApiKey> keys;
  std::set<std::string> names;
  std::set<KeyHash> hashes;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    auto fail = [&](absl::string_view message) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", number, ": ", message));
    };
    const json object = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (object.is_discarded() || !object.is_object()) {
      return fail("expected a JSON object such as {\"name\": \"alice\", \"key\": \"…\"}");
    }
    absl::StatusOr<ApiKey> key = ParseKey(object);
    if (!key.ok()) return fail(key.status().message());
    if (!names.insert(key->name).second) {
      return fail(absl::StrCat("name: \"", key->name, "\" is already used by an earlier line"));
    }
    if (!hashes.insert(key->hash).second) {
      return fail(absl::StrCat("key: the same key as an earlier line (", key->name, ")"));
    }
    keys.push_back(*std::move(key));
  }
  if (keys.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": no keys"));
  return keys;
}

absl::StatusOr<std::vector<ApiKey>> LoadApiKeys(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read the API key file"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseApiKeys(text.str(), path);
}

const ApiKey* ApiKeyTable::Find(absl::string_view token) const {
  const KeyHash hash = HashKey(token);
  const ApiKey* found = nullptr;
  for (const ApiKey& key : keys_) {  // every key, whether or not one matched already
    if (CRYPTO_memcmp(key.hash.data(), hash.data(), hash.size()) == 0) found = &key;
  }
  return found;
}

}  // namespace rami::auth
