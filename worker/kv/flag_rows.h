// FlagRows: the window flags of one sequence's streams, position-major — row r holds the flag of
// window slot r (position window_base + r) of every stream, one byte each, stream i at column i.
//
// Why rows: a step reads and writes the flags of the same one or two positions in all of a
// sequence's streams (the decisions of its new tokens, the flag of the token leaving the window).
// Position-major, that is a contiguous row per position; one vector per stream made it a cache
// miss per stream — most of a CUDA step's host time at batch 256 (docs/gpu.md).
//
// Rows dropped at the front (the window slid) are skipped by an offset; the live rows move back to
// the buffer's start only when a resize reaches its end (O(1) per row, amortized). Ownership: the
// KvCache's Sequence owns its FlagRows; WindowFlags views into it stay valid until the next
// Resize or DropFront.
#pragma once

#include <cstdint>
#include <vector>

namespace rami::kv {

// One stream's window flags: slot i's flag is data[i · stride]. T: uint8_t or const uint8_t.
template <typename T>
struct FlagColumn {
  T* data = nullptr;
  int64_t stride = 1;

  FlagColumn() = default;
  FlagColumn(T* d, int64_t s) : data(d), stride(s) {}
  // A writable column reads as a read-only one.
  template <typename U>
  FlagColumn(const FlagColumn<U>& other) : data(other.data), stride(other.stride) {}  // NOLINT

  T& operator[](int64_t slot) const { return data[slot * stride]; }
  // The same column from window slot `slots` on (the window after its front slid).
  FlagColumn Advanced(int64_t slots) const { return {data + slots * stride, stride}; }
};
using WindowFlags = FlagColumn<uint8_t>;
using ConstWindowFlags = FlagColumn<const uint8_t>;

class FlagRows {
 public:
  explicit FlagRows(int columns = 0) : columns_(columns) {}

  int columns() const { return columns_; }
  int64_t rows() const { return rows_; }

  // Stream `column`'s flags (window slot 0 at row 0).
  WindowFlags Column(int column) { return {data_.data() + first_ * columns_ + column, columns_}; }
  ConstWindowFlags Column(int column) const {
    return {data_.data() + first_ * columns_ + column, columns_};
  }
  uint8_t* Row(int64_t row) { return data_.data() + (first_ + row) * columns_; }
  const uint8_t* Row(int64_t row) const { return data_.data() + (first_ + row) * columns_; }

  // Keeps rows [0, min(rows, rows())) and fills the rest up to `rows` with `fill`.
  void Resize(int64_t rows, uint8_t fill = 0);
  // Drops the first `rows` rows: row `rows` becomes row 0.
  void DropFront(int64_t rows);
  // A copy of the live rows only.
  FlagRows Copy() const;

 private:
  int columns_;
  int64_t first_ = 0;  // the buffer row of row 0
  int64_t rows_ = 0;
  std::vector<uint8_t> data_;  // [capacity rows, columns]
};

}  // namespace rami::kv
