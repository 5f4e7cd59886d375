// The host-side planning of the attention kernels (no device needed, so these run everywhere):
// decode splits cover every visible key and only split long contexts of small batches;
// prefill tiles cover every chunk exactly, in order, never crossing a chunk.
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/attention.h"

namespace rami {
namespace {

TEST(AttentionPlan, DecodeSplitsCoverTheKeys) {
  constexpr int kSms = 132;
  for (int64_t keys : {1, 7, 255, 256, 513, 4099, 32768, 131072}) {
    for (int tokens : {1, 3, 17, 128, 256}) {
      for (int kv_heads : {1, 8}) {
        const kernels::DecodeSplitPlan plan =
            kernels::PlanDecodeSplits(keys, tokens, kv_heads, kSms);
        ASSERT_GE(plan.num_splits, 1);
        if (plan.num_splits == 1) continue;
        EXPECT_EQ(plan.keys_per_split % 64, 0);
        EXPECT_GE(static_cast<int64_t>(plan.num_splits) * plan.keys_per_split, keys);
        EXPECT_GE(plan.keys_per_split, 256);
        // No split is planned empty.
        EXPECT_LT(static_cast<int64_t>(plan.num_splits - 1) * plan.keys_per_split, keys);
        // Splitting only when the batch alone leaves SMs idle.
        EXPECT_LT(static_cast<int64_t>(tokens) * kv_heads, 2 * kSms);
      }
    }
  }
  // Long context, batch 1: enough blocks for every SM.
  const kernels::DecodeSplitPlan one = kernels::PlanDecodeSplits(32768, 1, 8, kSms);
  EXPECT_GE(one.num_splits * 8, kSms);
  // A large batch never splits.
  EXPECT_EQ(kernels::PlanDecodeSplits(32768, 256, 8, kSms).num_splits, 1);
}

TEST(AttentionPlan, PrefillTilesCoverEachChunk) {
  const std::vector<int32_t> first = {0, 1, 8, 521}, length = {1, 7, 513, 64};
  for (int group : {1, 3, 4, 8}) {
    const std::vector<kernels::PrefillTile> tiles = kernels::PlanPrefillTiles(first, length, group);
    size_t t = 0;
    for (size_t c = 0; c < first.size(); ++c) {
      int32_t next = first[c];
      while (next < first[c] + length[c]) {
        ASSERT_LT(t, tiles.size());
        EXPECT_EQ(tiles[t].first_token, next);
        EXPECT_GE(tiles[t].num_tokens, 1);
        EXPECT_LE(tiles[t].num_tokens, kernels::PrefillTileTokens(group));
        EXPECT_LE(tiles[t].num_tokens * group, kernels::PrefillTileRows());
        next += tiles[t++].num_tokens;
      }
      EXPECT_EQ(next, first[c] + length[c]);
    }
    EXPECT_EQ(t, tiles.size());
  }
}

}  // namespace
}  // namespace rami
