// KvPagePool: one rank's KV storage — fixed-size pages of page_size tokens × head_dim for K
// and for V — and the free list that hands pages out. Storage is host memory (CPU backend).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/paged_attention.h"

namespace rami {

struct KvPoolConfig {
  int page_size = 16;  // tokens per page
  int num_pages = 0;
  absl::Status Validate() const;
};

class KvPagePool {
 public:
  KvPagePool(const KvPoolConfig& config, int head_dim);

  int page_size() const { return page_size_; }
  int head_dim() const { return head_dim_; }
  int num_pages() const { return num_pages_; }
  int free_pages() const { return static_cast<int>(free_.size()); }

  // `count` pages, all or none: ResourceExhausted (with the numbers) when fewer are free.
  absl::StatusOr<std::vector<int32_t>> Allocate(int count);
  // Returns pages to the free list. Each page must be allocated (CHECKed: a double free is a
  // bookkeeping bug, not bad input).
  void Release(const std::vector<int32_t>& pages);

  // A view for the kernels; the page table fields are filled by the caller.
  kernels::KvPagesView View();

 private:
  int page_size_;
  int head_dim_;
  int num_pages_;
  std::vector<float> k_;         // [num_pages, page_size, head_dim]
  std::vector<float> v_;         // [num_pages, page_size, head_dim]
  std::vector<int32_t> free_;    // stack of free page ids
  std::vector<bool> allocated_;  // [num_pages]
};

}  // namespace rami
