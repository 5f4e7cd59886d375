// Greedy cutting of the copy log into independent launches; see kv_copy_batches.h.
#include "worker/kv/kv_copy_batches.h"

#include <cstddef>
#include <cstdint>

namespace rami::kv {
namespace {

// A set of slot numbers (≥ 0) for one launch: open addressing with linear probing, each entry
// stamped with the launch it belongs to, so that starting the next launch clears it in O(1).
// Its arrays are kept per thread between calls: a step's log reuses them without allocating.
class SlotSet {
 public:
  // Room for `count` insertions, empty.
  void Reset(size_t count) {
    size_t capacity = 64;
    while (capacity < 2 * count) capacity *= 2;
    if (capacity > keys_.size()) {
      keys_.assign(capacity, 0);
      stamps_.assign(capacity, 0);
      stamp_ = 0;
    }
    Clear();
  }
  void Clear() {
    if (++stamp_ == 0) {  // wrapped: forget every old stamp
      stamps_.assign(stamps_.size(), 0);
      stamp_ = 1;
    }
  }
  bool Contains(int64_t key) const {
    for (size_t i = Home(key);; i = (i + 1) & (keys_.size() - 1)) {
      if (stamps_[i] != stamp_) return false;
      if (keys_[i] == key) return true;
    }
  }
  void Insert(int64_t key) {
    size_t i = Home(key);
    for (; stamps_[i] == stamp_; i = (i + 1) & (keys_.size() - 1)) {
      if (keys_[i] == key) return;
    }
    keys_[i] = key;
    stamps_[i] = stamp_;
  }

 private:
  size_t Home(int64_t key) const {
    return static_cast<size_t>((static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull) >> 20) &
           (keys_.size() - 1);
  }

  std::vector<int64_t> keys_;
  std::vector<uint32_t> stamps_;
  uint32_t stamp_ = 0;
};

}  // namespace

std::vector<int32_t> KvCopyBatches(const std::vector<kernels::KvCopyOp>& ops, int page_size) {
  std::vector<int32_t> bounds;
  if (ops.empty()) return bounds;
  thread_local SlotSet read, written;  // slots (page · page_size + slot) of this launch
  size_t slots = 0;
  for (const kernels::KvCopyOp& op : ops) slots += static_cast<size_t>(op.num_slots);
  read.Reset(slots);
  written.Reset(slots);
  auto slot = [&](int32_t page, int32_t s) { return int64_t{page} * page_size + s; };
  bounds.push_back(0);
  for (size_t i = 0; i < ops.size(); ++i) {
    const kernels::KvCopyOp& op = ops[i];
    bool conflict = false;
    for (int32_t j = 0; j < op.num_slots && !conflict; ++j) {
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
