// Greedy cutting of the copy log into independent launches; see kv_copy_batches.h.
#include "worker/kv/kv_copy_batches.h"

#include <cstddef>
#include <unordered_set>

namespace rami::kv {

std::vector<int32_t> KvCopyBatches(const std::vector<kernels::KvCopyOp>& ops, int page_size) {
  std::vector<int32_t> bounds;
  if (ops.empty()) return bounds;
  std::unordered_set<int64_t> read, written;  // slots (page · page_size + slot) of this launch
  auto slot = [&](int32_t page, int32_t s) { return int64_t{page} * page_size + s; };
  bounds.push_back(0);
  for (size_t i = 0; i < ops.size(); ++i) {
    const kernels::KvCopyOp& op = ops[i];
    bool conflict = false;
    for (int32_t j = 0; j < op.num_slots && !conflict; ++j) {
      const int64_t src = slot(op.src_page, op.src_slot + j);
      const int64_t dst = slot(op.dst_page, op.dst_slot + j);
      conflict = written.count(src) || written.count(dst) || read.count(dst);
    }
    if (conflict) {
      bounds.push_back(static_cast<int32_t>(i));
      read.clear();
      written.clear();
    }
    for (int32_t j = 0; j < op.num_slots; ++j) {
      read.insert(slot(op.src_page, op.src_slot + j));
      written.insert(slot(op.dst_page, op.dst_slot + j));
    }
  }
  bounds.push_back(static_cast<int32_t>(ops.size()));
  return bounds;
}

}  // namespace rami::kv
