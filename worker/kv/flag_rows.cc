// Position-major window flags of one sequence; see flag_rows.h.
#include "worker/kv/flag_rows.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace rami::kv {

void FlagRows::Resize(int64_t rows, uint8_t fill) {
  RAMI_CHECK(rows >= 0, "negative flag rows");
  const int64_t capacity = columns_ == 0 ? 0 : static_cast<int64_t>(data_.size()) / columns_;
  const int64_t keep = std::min(rows, rows_);
  if (first_ + rows > capacity) {
    if (2 * rows <= capacity) {
      // Room at the front: the live rows move back to the start (a window slides into it again
      // for at least as many rows as it holds before the next move).
      if (keep > 0) std::memmove(data_.data(), Row(0), static_cast<size_t>(keep * columns_));
    } else {
      std::vector<uint8_t> grown(static_cast<size_t>(2 * rows * columns_));
      if (keep > 0) std::memcpy(grown.data(), Row(0), static_cast<size_t>(keep * columns_));
      data_.swap(grown);
    }
    first_ = 0;
  }
  if (rows > keep) std::memset(Row(keep), fill, static_cast<size_t>((rows - keep) * columns_));
  rows_ = rows;
}

void FlagRows::DropFront(int64_t rows) {
  RAMI_CHECK(rows >= 0 && rows <= rows_, "dropping %lld of %lld flag rows",
             static_cast<long long>(rows), static_cast<long long>(rows_));
  first_ += rows;
  rows_ -= rows;
  if (rows_ == 0) first_ = 0;
}

FlagRows FlagRows::Copy() const {
  FlagRows copy(columns_);
  copy.data_.assign(Row(0), Row(0) + rows_ * columns_);
  copy.rows_ = rows_;
  return copy;
}

}  // namespace rami::kv
