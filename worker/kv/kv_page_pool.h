// KvPagePool: one rank's KV storage — fixed-size pages of page_size tokens × head_dim for K
// and for V — with reference counts, so that forked sequences share immutable pages. A K-only
// pool (`store_values` false) holds one row per token and no V: MLA caches its latent +
// rope key there (kv_lora_rank + qk_rope_head_dim values), read as both key and value.
// Storage is host memory (CPU backend); an accounting-only pool (no storage) runs the real
// bookkeeping for capacity planning without allocating KV memory.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/kv_copy.h"

namespace rami::kv {

struct KvPoolConfig {
  int page_size = 16;  // tokens per page
  int num_pages = 0;
  bool allocate_storage = true;  // false: bookkeeping only (benchmarks, planning)
  absl::Status Validate() const;
};

class KvPagePool {
 public:
  KvPagePool(const KvPoolConfig& config, int head_dim, bool store_values = true);

  int page_size() const { return page_size_; }
  int head_dim() const { return head_dim_; }
  int num_pages() const { return num_pages_; }
  int free_pages() const { return static_cast<int>(free_.size()); }
  int pages_in_use() const { return num_pages_ - free_pages(); }
  // Monotonic counters: pages handed out by Allocate and pages returned to the free list.
  int64_t pages_allocated_total() const { return allocated_total_; }
  int64_t pages_freed_total() const { return freed_total_; }

  // Every reference is held by an *owner* (an id ≥ 0: a KvCache sequence), at most one
  // reference per owner and page. `count` pages with reference count 1, all or none:
  // ResourceExhausted (with the numbers) when fewer are free.
  absl::StatusOr<std::vector<int32_t>> Allocate(int count, int32_t owner);
  // `owner` references `page` too.
  void Retain(int32_t page, int32_t owner);
  // `owner` drops its reference; a page whose count drops to zero returns to the free list.
  // Releasing a free page is a bookkeeping bug (RAMI_CHECK), not bad input.
  void Release(int32_t page, int32_t owner);
  int ref_count(int32_t page) const { return pages_[page].refs; }
  // Pages `owner` references that another owner references too, O(1): kept by every Retain and
  // Release (each page holds the XOR of its owners' ids, which names the one left when its
  // count drops to 1), so that what freeing an owner returns is known without a scan.
  int64_t shared_pages(int32_t owner) const {
    return static_cast<size_t>(owner) < shared_.size() ? shared_[owner] : 0;
  }

  // Slot `slot` of `page` (storage must be allocated).
  float* k(int32_t page, int slot);
  float* v(int32_t page, int slot);
  float* k_data() { return k_.data(); }
  float* v_data() { return v_.empty() ? nullptr : v_.data(); }  // null for a K-only pool
  // Records every slot copy below into `log` (null: none), in order, whether or not this pool
  // holds storage: the CUDA backend keeps an accounting-only pool on the host and replays the
  // copies (promotions at commit, fork tails) on its device pool (kernels/cuda/kv_update.h).
  void set_copy_log(std::vector<kernels::KvCopyOp>* log) { copy_log_ = log; }

  // Copies `count` slots from the start of `src` to the start of `dst` (K and V).
  void CopySlots(int32_t src, int32_t dst, int count);
  // Copies one slot (K and V).
  void CopySlot(int32_t src, int src_slot, int32_t dst, int dst_slot);

 private:
  int page_size_;
  int head_dim_;
  int num_pages_;
  std::vector<float> k_;  // [num_pages, page_size, head_dim] (empty: accounting only)
  std::vector<float> v_;  // [num_pages, page_size, head_dim] (empty: K-only or accounting)
  struct PageRefs {
    int32_t refs = 0;    // reference count
    int32_t owners = 0;  // XOR of the owners' ids
  };
  void AddShared(int32_t owner, int64_t delta);

  std::vector<int32_t> free_;    // stack of free page ids
  std::vector<PageRefs> pages_;  // [num_pages]
  std::vector<int64_t> shared_;  // [owner] shared_pages
  int64_t allocated_total_ = 0;
  int64_t freed_total_ = 0;
  std::vector<kernels::KvCopyOp>* copy_log_ = nullptr;  // not owned
};

// One owner's hand on a pool: the page operations of one sequence's streams (kv_stream.h).
struct OwnedPages {
  KvPagePool& pool;
  int32_t owner;

  absl::StatusOr<std::vector<int32_t>> Allocate(int count) { return pool.Allocate(count, owner); }
  void Retain(int32_t page) { pool.Retain(page, owner); }
  void Release(int32_t page) { pool.Release(page, owner); }
  void CopySlots(int32_t src, int32_t dst, int count) { pool.CopySlots(src, dst, count); }
  void CopySlot(int32_t src, int src_slot, int32_t dst, int dst_slot) {
    pool.CopySlot(src, src_slot, dst, dst_slot);
  }
};

}  // namespace rami::kv
