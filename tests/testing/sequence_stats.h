// Two runs' cache accounting of one sequence compared (kv::SequenceStats): tokens processed,
// live tokens (min, max, sum over its streams), eviction decisions and evictions. Page counts are
// not compared: two runs may lay the same tokens out on different pages (a prefix copy, a fork).
#pragma once

#include <string>

#include "gtest/gtest.h"
#include "worker/kv/kv_cache.h"

namespace rami::testing {

inline void ExpectSameStats(const kv::SequenceStats& got, const kv::SequenceStats& want,
                            const std::string& where) {
  EXPECT_EQ(got.logical_tokens, want.logical_tokens) << where;
  EXPECT_EQ(got.live_min, want.live_min) << where;
  EXPECT_EQ(got.live_max, want.live_max) << where;
  EXPECT_EQ(got.live_sum, want.live_sum) << where;
  EXPECT_EQ(got.decided, want.decided) << where;
  EXPECT_EQ(got.evicted, want.evicted) << where;
}

}  // namespace rami::testing
