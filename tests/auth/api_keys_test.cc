// The --api_keys_file parser: good lines, and every bad line's error naming its line number
// and field; SHA-256 hashing and lookup.
#include "coordinator/auth/api_keys.h"

#include <string>

#include "gtest/gtest.h"

namespace rami::auth {
namespace {

constexpr char kAlice[] = "alice-0123456789abcdef";
constexpr char kOps[] = "ops-secret-0123456789";

std::string Hex(const KeyHash& hash) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : hash) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

TEST(ApiKeys, ParsesKeysLimitsAndHashes) {
  const std::string text = std::string("# team keys\n\n") + "{\"name\": \"alice\", \"key\": \"" +
                           kAlice + "\", \"max_jobs\": 4, \"max_branches\": 64, \"rps\": 2.5}\n" +
                           "  {\"name\": \"ops\", \"sha256\": \"" + Hex(HashKey(kOps)) +
                           "\", \"admin\": true, \"burst\": 7}\n";
  absl::StatusOr<std::vector<ApiKey>> keys = ParseApiKeys(text, "keys.jsonl");
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 2u);
  const ApiKey& alice = (*keys)[0];
  EXPECT_EQ(alice.name, "alice");
  EXPECT_FALSE(alice.admin);
  EXPECT_EQ(alice.hash, HashKey(kAlice));
  EXPECT_EQ(alice.limits.max_jobs, 4);
  EXPECT_EQ(alice.limits.max_branches, 64);
  EXPECT_DOUBLE_EQ(alice.limits.rps, 2.5);
  EXPECT_EQ(alice.limits.burst, 5);  // default: twice rps
  const ApiKey& ops = (*keys)[1];
  EXPECT_TRUE(ops.admin);
  EXPECT_EQ(ops.hash, HashKey(kOps));
  EXPECT_EQ(ops.limits.max_jobs, kDefaultLimits.max_jobs);
  EXPECT_EQ(ops.limits.max_branches, kDefaultLimits.max_branches);
  EXPECT_DOUBLE_EQ(ops.limits.rps, kDefaultLimits.rps);
  EXPECT_EQ(ops.limits.burst, 7);
}

TEST(ApiKeys, HashIsSha256) {
  // sha256("abc"), FIPS 180-2's example.
  EXPECT_EQ(Hex(HashKey("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiKeys, ZeroMeansNoLimit) {
  absl::StatusOr<std::vector<ApiKey>> keys =
      ParseApiKeys(std::string("{\"name\": \"batch\", \"key\": \"") + kAlice +
                       "\", \"max_jobs\": 0, \"max_branches\": 0, \"rps\": 0}",
                   "k");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ((*keys)[0].limits.max_jobs, 0);
  EXPECT_EQ((*keys)[0].limits.rps, 0);
  EXPECT_EQ((*keys)[0].limits.burst, 1);
}

// Each bad line: the error names the file, the line and the field — and never the key.
TEST(ApiKeys, BadLinesNameTheLineAndTheField) {
  const std::string good = std::string("{\"name\": \"alice\", \"key\": \"") + kAlice + "\"}\n";
  const struct {
    std::string line;
    std::string expected;
  } cases[] = {
      {"name: alice", "keys:2: expected a JSON object"},
      {"[1, 2]", "keys:2: expected a JSON object"},
      {"{\"key\": \"0123456789abcdefXYZ\"}", "keys:2: name: required"},
      {"{\"name\": \"bob\"}", "keys:2: key: required"},
      {"{\"name\": \"b o b\", \"key\": \"0123456789abcdefXYZ\"}", "keys:2: name: expected"},
      {"{\"name\": \"bob\", \"key\": \"short\"}", "keys:2: key: expected 16…512"},
      {"{\"name\": \"bob\", \"key\": \"0123456789abcdef xyz\"}", "keys:2: key: expected"},
      {"{\"name\": \"bob\", \"sha256\": \"abc\"}", "keys:2: sha256: expected 64 hex digits"},
      {"{\"name\": \"bob\", \"key\": \"0123456789abcdefXYZ\", \"sha256\": \"" + Hex(HashKey("x")) +
           "\"}",
       "keys:2: sha256: give key or sha256, not both"},
      {"{\"name\": \"bob\", \"key\": \"0123456789abcdefXYZ\", \"admin\": 1}",
       "keys:2: admin: expected true or false, found 1"},
      {"{\"name\": \"bob\", \"key\": \"0123456789abcdefXYZ\", \"max_jobs\": -1}",
       "keys:2: max_jobs: expected an integer 0…1000000, found -1"},
      {"{\"name\": \"bob\", \"key\": \"0123456789abcdefXYZ\", \"max_branches\": \"8\"}",
       "keys:2: max_branches: expected an integer 0…1000000, found \"8\""},
      {"{\"name\": \"bob\", \"key\": \"0123456789abcdefXYZ\", \"rps\": -2}",
       "keys:2: rps: expected a number 0…1000000, found -2"},
      {"{\"name\": \"bob\", \"key\": \"0123456789abcdefXYZ\", \"burst\": 0}",
       "keys:2: burst: expected an integer 1…1000000, found 0"},
      {"{\"name\": \"bob\", \"key\": \"0123456789abcdefXYZ\", \"max_job\": 3}",
       "keys:2: max_job: unknown field"},
      {"{\"name\": \"alice\", \"key\": \"0123456789abcdefXYZ\"}",
       "keys:2: name: \"alice\" is already used by an earlier line"},
      {std::string("{\"name\": \"bob\", \"key\": \"") + kAlice + "\"}",
       "keys:2: key: the same key as an earlier line"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::vector<ApiKey>> keys = ParseApiKeys(good + c.line + "\n", "keys");
    ASSERT_FALSE(keys.ok()) << c.line;
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(std::string(keys.status().message()).rfind(c.expected, 0), 0u)
        << c.line << " → " << keys.status().message();
    EXPECT_EQ(std::string(keys.status().message()).find("0123456789abcdefXYZ"), std::string::npos)
        << "the error shows the key: " << keys.status().message();
  }
}

TEST(ApiKeys, EmptyFileAndMissingFileAreErrors) {
  EXPECT_EQ(ParseApiKeys("# nothing\n\n", "keys").status().message(), "keys: no keys");
  const absl::Status missing = LoadApiKeys("/nonexistent/keys.jsonl").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("/nonexistent/keys.jsonl"), absl::string_view::npos);
}

TEST(ApiKeyTable, FindsOnlyTheExactKey) {
  absl::StatusOr<std::vector<ApiKey>> keys =
      ParseApiKeys(std::string("{\"name\": \"alice\", \"key\": \"") + kAlice +
                       "\"}\n{\"name\": \"ops\", \"key\": \"" + kOps + "\", \"admin\": true}",
                   "k");
  ASSERT_TRUE(keys.ok()) << keys.status();
  const ApiKeyTable table(*std::move(keys));
  ASSERT_NE(table.Find(kAlice), nullptr);
  EXPECT_EQ(table.Find(kAlice)->name, "alice");
  ASSERT_NE(table.Find(kOps), nullptr);
  EXPECT_TRUE(table.Find(kOps)->admin);
  EXPECT_EQ(table.Find(""), nullptr);
  EXPECT_EQ(table.Find(std::string(kAlice) + "x"), nullptr);
  EXPECT_EQ(table.Find(std::string(kAlice).substr(1)), nullptr);
}

}  // namespace
}  // namespace rami::auth
