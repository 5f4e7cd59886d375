// API keys: the --api_keys_file format, parsed into a table of keys held only as SHA-256
// hashes, each with its owner's name, role and limits. Lookup compares every stored hash in
// constant time (CRYPTO_memcmp), so the time taken says nothing about which key, if any,
// was close.
//
// The file: one key per line as a JSON object; blank lines and lines starting with '#' are
// skipped.
//   {"name": "alice", "key": "<token>", "max_jobs": 4, "max_branches": 64, "rps": 5}
//   {"name": "ops", "sha256": "<64 hex digits>", "admin": true}
// name: 1…64 of [A-Za-z0-9_.@-], unique. Exactly one of key (the token itself, 16…512
// printable ASCII characters without spaces) or sha256 (the token's hash, so the file need not
// hold the token). admin: sees worker addresses (GetServerInfo) and /metrics. Limits (0 = no
// limit): max_jobs (jobs queued or running at once), max_branches (their branches), rps
// (requests per second, refilled continuously) and burst (requests at once; default twice rps,
// at least 1). A limit a line leaves out is kDefaultLimits'.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rami::auth {

using KeyHash = std::array<uint8_t, 32>;  // SHA-256

KeyHash HashKey(absl::string_view token);

struct KeyLimits {
  int max_jobs = 16;        // 0: no limit
  int max_branches = 1024;  // 0: no limit
  double rps = 20;          // 0: no limit
  int burst = 40;           // bucket size; with rps 0 unused
};

inline constexpr KeyLimits kDefaultLimits;

struct ApiKey {
  std::string name;
  KeyHash hash{};
  bool admin = false;
  KeyLimits limits;
};

// Parses a key file's text; errors name the source, the line and the field
// ("keys.jsonl:3: max_jobs: expected an integer 0…1000000, found \"x\"").
absl::StatusOr<std::vector<ApiKey>> ParseApiKeys(absl::string_view text, absl::string_view source);
// Reads and parses the file at `path`.
absl::StatusOr<std::vector<ApiKey>> LoadApiKeys(const std::string& path);

class ApiKeyTable {
 public:
  explicit ApiKeyTable(std::vector<ApiKey> keys) : keys_(std::move(keys)) {}
  // The key whose hash matches `token`'s, or null. Compares against every key.
  const ApiKey* Find(absl::string_view token) const;
  const std::vector<ApiKey>& keys() const { return keys_; }

 private:
  std::vector<ApiKey> keys_;
};

}  // namespace rami::auth
