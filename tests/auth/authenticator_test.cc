// Authenticator: bearer tokens, unknown and missing keys, the per-key rate limit with an
// injected clock, and the anonymous owner without keys.
#include "coordinator/auth/authenticator.h"

#include <string>

#include "gtest/gtest.h"

namespace rami::auth {
namespace {

constexpr char kAlice[] = "alice-0123456789abcdef";
constexpr char kOps[] = "ops-secret-0123456789";

std::vector<ApiKey> Keys() {
  absl::StatusOr<std::vector<ApiKey>> keys = ParseApiKeys(
      std::string("{\"name\": \"alice\", \"key\": \"") + kAlice +
          "\", \"rps\": 1, \"burst\": 2, \"max_jobs\": 3}\n" + "{\"name\": \"ops\", \"key\": \"" +
          kOps + "\", \"admin\": true, \"rps\": 0}",
      "k");
  EXPECT_TRUE(keys.ok()) << keys.status();
  return keys.ok() ? *std::move(keys) : std::vector<ApiKey>();
}

TEST(Authenticator, WithoutKeysEveryoneIsTheAnonymousAdmin) {
  Authenticator auth;
  EXPECT_FALSE(auth.enabled());
  for (const char* header : {"", "Bearer whatever"}) {
    absl::StatusOr<Caller> caller = auth.Authenticate(header);
    ASSERT_TRUE(caller.ok()) << caller.status();
    EXPECT_EQ(caller->name, "");
    EXPECT_TRUE(caller->admin);
    EXPECT_EQ(caller->limits.max_jobs, 0);
    EXPECT_EQ(caller->limits.max_branches, 0);
  }
}

TEST(Authenticator, BearerKeysNameTheirOwner) {
  Authenticator auth(Keys());
  EXPECT_TRUE(auth.enabled());
  absl::StatusOr<Caller> alice = auth.Authenticate(std::string("Bearer ") + kAlice);
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->name, "alice");
  EXPECT_FALSE(alice->admin);
  EXPECT_EQ(alice->limits.max_jobs, 3);
  absl::StatusOr<Caller> ops = auth.Authenticate(std::string("bearer  ") + kOps + " ");
  ASSERT_TRUE(ops.ok()) << ops.status();
  EXPECT_TRUE(ops->admin);
}

TEST(Authenticator, MissingMalformedAndWrongKeysAreUnauthenticated) {
  Authenticator auth(Keys());
  for (const std::string header :
       {std::string(), std::string("  "), std::string(kAlice), std::string("Basic ") + kAlice,
        std::string("Bearer"), std::string("Bearer ") + kAlice + "x",
        std::string("Bearer wrong-key-0123456789")}) {
    absl::StatusOr<Caller> caller = auth.Authenticate(header);
    ASSERT_FALSE(caller.ok()) << header;
    EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated) << header;
    EXPECT_EQ(std::string(caller.status().message()).find(kAlice), std::string::npos)
        << "the error echoes the key: " << caller.status().message();
  }
}

TEST(Authenticator, EachKeyHasItsOwnRateLimit) {
  absl::Time now = absl::FromUnixSeconds(5000);
  Authenticator auth(Keys(), [&now] { return now; });
  const std::string alice = std::string("Bearer ") + kAlice;
  EXPECT_TRUE(auth.Authenticate(alice).ok());
  EXPECT_TRUE(auth.Authenticate(alice).ok());  // burst 2
  const absl::Status limited = auth.Authenticate(alice).status();
  EXPECT_EQ(limited.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(limited.message(), "api key \"alice\": rps 1 reached (burst 2)");
  // ops has no rps limit, and alice's bucket is not its.
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(auth.Authenticate(std::string("Bearer ") + kOps).ok());
  now += absl::Seconds(1);
  EXPECT_TRUE(auth.Authenticate(alice).ok());
  EXPECT_FALSE(auth.Authenticate(alice).ok());
  // A wrong key costs no one's tokens.
  now += absl::Seconds(2);
  EXPECT_FALSE(auth.Authenticate("Bearer nobody-0123456789abc").ok());
  EXPECT_TRUE(auth.Authenticate(alice).ok());
  EXPECT_TRUE(auth.Authenticate(alice).ok());
}

}  // namespace
}  // namespace rami::auth
