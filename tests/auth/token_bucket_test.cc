// TokenBucket with a hand-stepped clock: the burst at once, then the refill rate.
#include "coordinator/auth/token_bucket.h"

#include "gtest/gtest.h"

namespace rami::auth {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1000);

TEST(TokenBucket, BurstThenRefillAtTheRate) {
  TokenBucket bucket(/*rate=*/2, /*burst=*/3, kStart);
  EXPECT_TRUE(bucket.TryTake(kStart));
  EXPECT_TRUE(bucket.TryTake(kStart));
  EXPECT_TRUE(bucket.TryTake(kStart));
  EXPECT_FALSE(bucket.TryTake(kStart));  // burst spent
  EXPECT_FALSE(bucket.TryTake(kStart + absl::Milliseconds(499)));
  EXPECT_TRUE(bucket.TryTake(kStart + absl::Milliseconds(500)));  // 2/s: one per 0.5 s
  EXPECT_FALSE(bucket.TryTake(kStart + absl::Milliseconds(500)));
  EXPECT_TRUE(bucket.TryTake(kStart + absl::Seconds(1)));
}

TEST(TokenBucket, RefillIsCappedAtTheBurst) {
  TokenBucket bucket(/*rate=*/10, /*burst=*/2, kStart);
  const absl::Time later = kStart + absl::Hours(1);
  EXPECT_TRUE(bucket.TryTake(later));
  EXPECT_TRUE(bucket.TryTake(later));
  EXPECT_FALSE(bucket.TryTake(later));
}

TEST(TokenBucket, SlowRatesAndClocksGoingBack) {
  TokenBucket bucket(/*rate=*/0.5, /*burst=*/1, kStart);
  EXPECT_TRUE(bucket.TryTake(kStart));
  EXPECT_FALSE(bucket.TryTake(kStart + absl::Milliseconds(1999)));
  EXPECT_FALSE(bucket.TryTake(kStart - absl::Seconds(10)));  // backwards: refills nothing
  EXPECT_TRUE(bucket.TryTake(kStart + absl::Seconds(2)));
}

}  // namespace
}  // namespace rami::auth
