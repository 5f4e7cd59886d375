// The page pool's free list.
#include "worker/kv_page_pool.h"

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace rami {

absl::Status KvPoolConfig::Validate() const {
  if (page_size < 1 || page_size > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv page_size: expected a value in [1, 4096], found ", page_size));
  }
  if (num_pages < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv num_pages: expected at least 1, found ", num_pages));
  }
  return absl::OkStatus();
}

KvPagePool::KvPagePool(const KvPoolConfig& config, int head_dim)
    : page_size_(config.page_size),
      head_dim_(head_dim),
      num_pages_(config.num_pages),
      k_(static_cast<size_t>(config.num_pages) * config.page_size * head_dim),
      v_(k_.size()),
      allocated_(config.num_pages, false) {
  free_.reserve(num_pages_);
  // Highest id on the bottom of the stack so pages are handed out 0, 1, 2, ...
  for (int32_t page = num_pages_ - 1; page >= 0; --page) free_.push_back(page);
}

absl::StatusOr<std::vector<int32_t>> KvPagePool::Allocate(int count) {
  if (count < 0 || count > free_pages()) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache: ", count, " pages needed, ",
                                                     free_pages(), " of ", num_pages_, " free"));
  }
  std::vector<int32_t> pages(free_.end() - count, free_.end());
  free_.resize(free_.size() - count);
  for (int32_t page : pages) allocated_[page] = true;
  return pages;
}

void KvPagePool::Release(const std::vector<int32_t>& pages) {
  for (int32_t page : pages) {
    RAMI_CHECK(page >= 0 && page < num_pages_ && allocated_[page], "KV page %d released twice",
               page);
    allocated_[page] = false;
    free_.push_back(page);
  }
}

kernels::KvPagesView KvPagePool::View() {
  kernels::KvPagesView view;
  view.k_pool = k_.data();
  view.v_pool = v_.data();
  view.page_size = page_size_;
  view.head_dim = head_dim_;
  return view;
}

}  // namespace rami
