// StreamRows<T>: one value per stream of a sequence for each of a run of rows, row-major — row r
// holds column c's value for every stream c. A sequence's windows are kept this way (kv_stream.h:
// SequenceWindows): row j of its window pages is page j of every stream's window, row i of its
// flags the flag of window slot i (position base + i) in every stream.
//
// Why rows: the window geometry depends on the sequence's length alone, and a step works on the
// same slots of every stream — the decisions of its new tokens, the tokens leaving the windows,
// the pages at their front. Row-major that is a contiguous row; a vector per stream made it a
// cache miss per stream, most of a CUDA step's host time at batch 256 (docs/gpu.md).
//
// Rows dropped at the front (the window slid) are skipped by an offset; the live rows move back
// to the buffer's start only when a resize reaches its end (O(1) per row, amortized). Ownership:
// the KvCache's sequence owns them; RowColumn views stay valid until the next Resize or DropFront.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "base/check.h"

namespace rami::kv {

// One stream's column: row r's value is data[r · stride]. T may be const.
template <typename T>
struct RowColumn {
  T* data = nullptr;
  int64_t stride = 1;

  RowColumn() = default;
  RowColumn(T* d, int64_t s) : data(d), stride(s) {}
  // A writable column reads as a read-only one.
  template <typename U>
  RowColumn(const RowColumn<U>& other) : data(other.data), stride(other.stride) {}  // NOLINT

  T& operator[](int64_t row) const { return data[row * stride]; }
};

template <typename T>
class StreamRows {
 public:
  explicit StreamRows(int columns = 0) : columns_(columns) {}

  int columns() const { return columns_; }
  int64_t rows() const { return rows_; }

  RowColumn<T> Column(int column) { return {data_.data() + first_ * columns_ + column, columns_}; }
  RowColumn<const T> Column(int column) const {
    return {data_.data() + first_ * columns_ + column, columns_};
  }
  T* Row(int64_t row) { return data_.data() + (first_ + row) * columns_; }
  const T* Row(int64_t row) const { return data_.data() + (first_ + row) * columns_; }

  // Keeps rows [0, min(rows, rows())) and fills the rest up to `rows` with `fill`.
  void Resize(int64_t rows, T fill = T()) {
    RAMI_CHECK(rows >= 0, "negative row count");
    const int64_t capacity = columns_ == 0 ? 0 : static_cast<int64_t>(data_.size()) / columns_;
    const int64_t keep = std::min(rows, rows_);
    if (first_ + rows > capacity) {
      if (2 * rows <= capacity) {
        // Room at the front: the live rows move back to the start (a window slides into it
        // again for at least as many rows as it holds before the next move).
        if (keep > 0) std::memmove(data_.data(), Row(0), Bytes(keep));
      } else {
        std::vector<T> grown(static_cast<size_t>(2 * rows * columns_));
        if (keep > 0) std::memcpy(grown.data(), Row(0), Bytes(keep));
        data_.swap(grown);
      }
      first_ = 0;
    }
    std::fill(Row(keep), Row(rows), fill);
    rows_ = rows;
  }
  // Drops the first `rows` rows: row `rows` becomes row 0.
  void DropFront(int64_t rows) {
    RAMI_CHECK(rows >= 0 && rows <= rows_, "dropping %lld of %lld rows",
               static_cast<long long>(rows), static_cast<long long>(rows_));
    first_ += rows;
    rows_ -= rows;
    if (rows_ == 0) first_ = 0;
  }
  // A copy of the live rows only.
  StreamRows Copy() const {
    StreamRows copy(columns_);
    copy.data_.assign(Row(0), Row(0) + rows_ * columns_);
    copy.rows_ = rows_;
    return copy;
  }

 private:
  static_assert(std::is_trivially_copyable_v<T>);
  size_t Bytes(int64_t rows) const { return static_cast<size_t>(rows * columns_) * sizeof(T); }

  int columns_;
  int64_t first_ = 0;  // the buffer row of row 0
  int64_t rows_ = 0;
  std::vector<T> data_;  // [capacity rows, columns]
};

using FlagRows = StreamRows<uint8_t>;  // window flags: a row per window slot
using PageRows = StreamRows<int32_t>;  // window pages: a row per window page
using ConstWindowFlags = RowColumn<const uint8_t>;
using ConstPageColumn = RowColumn<const int32_t>;

}  // namespace rami::kv
