// Greedy cutting of the copy log into independent launches; see kv_copy_batches.h.
#include "worker/kv/kv_copy_batches.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace rami::kv {
namespace {

// A set of slot numbers (0 ≤ key < 2^40) for one launch: open addressing with linear probing,
// each entry one word — the launch's stamp in the top 24 bits, the key below — so that a probe
// is one load and starting the next launch clears the set in O(1). Its array is kept per thread
// between calls: a step's log reuses it without allocating.
class SlotSet {
 public:
  // Room for `count` insertions, empty.
  void Reset(size_t count) {
    size_t capacity = 64;
    while (capacity < 2 * count) capacity *= 2;
    if (capacity > entries_.size()) {
      entries_.assign(capacity, 0);
      stamp_ = 0;
    }
    Clear();
  }
  void Clear() {
    if (++stamp_ == kStamps) {  // wrapped: forget every old stamp
      std::fill(entries_.begin(), entries_.end(), 0);
      stamp_ = 1;
    }
  }
  bool Contains(int64_t key) const {
    const uint64_t want = Entry(key);
    for (size_t i = Home(key);; i = (i + 1) & (entries_.size() - 1)) {
      const uint64_t e = entries_[i];
      if (e >> kKeyBits != stamp_) return false;
      if (e == want) return true;
    }
  }
  void Insert(int64_t key) {
    const uint64_t want = Entry(key);
    size_t i = Home(key);
    for (; entries_[i] >> kKeyBits == stamp_; i = (i + 1) & (entries_.size() - 1)) {
      if (entries_[i] == want) return;
    }
    entries_[i] = want;
  }

 private:
  static constexpr int kKeyBits = 40;
  static constexpr uint64_t kStamps = uint64_t{1} << (64 - kKeyBits);

  uint64_t Entry(int64_t key) const { return (stamp_ << kKeyBits) | static_cast<uint64_t>(key); }
  size_t Home(int64_t key) const {
    return static_cast<size_t>((static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull) >> 20) &
           (entries_.size() - 1);
  }

  std::vector<uint64_t> entries_;
  uint64_t stamp_ = 0;
};

}  // namespace

std::vector<int32_t> KvCopyBatches(const std::vector<kernels::KvCopyOp>& ops, int page_size,
                                   size_t independent) {
  std::vector<int32_t> bounds;
  if (ops.empty()) return bounds;
  if (independent >= ops.size()) return {0, static_cast<int32_t>(ops.size())};
  thread_local SlotSet read, written;  // slots (page · page_size + slot) of this launch
  size_t slots = 0;
  for (const kernels::KvCopyOp& op : ops) slots += static_cast<size_t>(op.num_slots);
  read.Reset(slots);
  written.Reset(slots);
  auto slot = [&](int32_t page, int32_t s) { return int64_t{page} * page_size + s; };  // < 2^40
  bounds.push_back(0);
  for (size_t i = 0; i < ops.size(); ++i) {
    const kernels::KvCopyOp& op = ops[i];
    bool conflict = false;
    for (int32_t j = 0; j < op.num_slots && !conflict && i >= independent; ++j) {
      const int64_t src = slot(op.src_page, op.src_slot + j);
      const int64_t dst = slot(op.dst_page, op.dst_slot + j);
      conflict = written.Contains(src) || written.Contains(dst) || read.Contains(dst);
    }
    if (conflict) {
      bounds.push_back(static_cast<int32_t>(i));
      read.Clear();
      written.Clear();
    }
    for (int32_t j = 0; j < op.num_slots; ++j) {
      read.Insert(slot(op.src_page, op.src_slot + j));
      written.Insert(slot(op.dst_page, op.dst_slot + j));
    }
  }
  bounds.push_back(static_cast<int32_t>(ops.size()));
  return bounds;
}

}  // namespace rami::kv
