// StreamRows (worker/kv/stream_rows.h) against a brute-force model — a deque of rows — through
// random resizes, front drops, writes through columns and rows, and copies: the live rows keep
// their values across every move and growth of the buffer, new rows get the fill.
#include "worker/kv/stream_rows.h"

#include <deque>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace rami {
namespace {

template <typename T>
using Model = std::deque<std::vector<T>>;

template <typename T>
void ExpectEqual(const kv::StreamRows<T>& rows, const Model<T>& model, const std::string& at) {
  ASSERT_EQ(rows.rows(), static_cast<int64_t>(model.size())) << at;
  for (size_t r = 0; r < model.size(); ++r) {
    for (int c = 0; c < rows.columns(); ++c) {
      ASSERT_EQ(rows.Row(static_cast<int64_t>(r))[c], model[r][c]) << at << " row " << r;
      ASSERT_EQ(rows.Column(c)[static_cast<int64_t>(r)], model[r][c]) << at << " column " << c;
    }
  }
}

// Flags (bytes) and page ids (int32, values past a byte's range).
template <typename T>
class StreamRowsTest : public ::testing::Test {};
using Types = ::testing::Types<uint8_t, int32_t>;
TYPED_TEST_SUITE(StreamRowsTest, Types);

TYPED_TEST(StreamRowsTest, MatchesADequeOfRowsThroughSlidesAndGrowth) {
  using T = TypeParam;
  constexpr int kColumns = 5;
  std::mt19937 rng(11);
  auto value = [&rng](int range) {
    return static_cast<T>(rng() % range * (sizeof(T) > 1 ? 100003 : 1));
  };
  kv::StreamRows<T> rows(kColumns);
  Model<T> model;
  for (int op = 0; op < 4000; ++op) {
    const std::string at = "op " + std::to_string(op);
    switch (rng() % 5) {
      case 0: {  // the window grows (a reservation) or shrinks (a trim)
        const int64_t n = std::max<int64_t>(
            0, static_cast<int64_t>(model.size()) + static_cast<int64_t>(rng() % 13) - 4);
        const T fill = value(3);
        rows.Resize(n, fill);
        model.resize(static_cast<size_t>(n), std::vector<T>(kColumns, fill));
        break;
      }
      case 1: {  // the window slides
        const int64_t n = model.empty() ? 0 : static_cast<int64_t>(rng() % (model.size() + 1));
        rows.DropFront(n);
        model.erase(model.begin(), model.begin() + n);
        break;
      }
      case 2:  // one stream's flag
        if (!model.empty()) {
          const size_t r = rng() % model.size();
          const int c = static_cast<int>(rng() % kColumns);
          const T v = value(2);
          rows.Column(c)[static_cast<int64_t>(r)] = v;
          model[r][c] = v;
        }
        break;
      case 3:  // a row: every stream's flag of one position
        if (!model.empty()) {
          const size_t r = rng() % model.size();
          for (int c = 0; c < kColumns; ++c) {
            const T v = value(2);
            rows.Row(static_cast<int64_t>(r))[c] = v;
            model[r][c] = v;
          }
        }
        break;
      default: {  // a fork: the copy holds the same rows and evolves on its own
        kv::StreamRows<T> copy = rows.Copy();
        ASSERT_NO_FATAL_FAILURE(ExpectEqual(copy, model, at + " copy"));
        if (!model.empty()) copy.Row(0)[0] ^= 1;
        break;
      }
    }
    ASSERT_NO_FATAL_FAILURE(ExpectEqual(rows, model, at));
  }
}

TEST(StreamRows, AColumnReadsItsStreamAcrossRows) {
  kv::FlagRows rows(3);
  rows.Resize(6);
  for (int64_t r = 0; r < 6; ++r) rows.Row(r)[1] = static_cast<uint8_t>(r);
  const kv::ConstWindowFlags column = std::as_const(rows).Column(1);
  EXPECT_EQ(column.stride, 3);
  EXPECT_EQ(column[5], 5);
  rows.DropFront(4);  // row 4 becomes row 0
  EXPECT_EQ(rows.Column(1)[1], 5);
}

}  // namespace
}  // namespace rami
