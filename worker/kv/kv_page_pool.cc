// The page pool's free list and reference counts.
#include "worker/kv/kv_page_pool.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace rami::kv {

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

KvPagePool::KvPagePool(const KvPoolConfig& config, int head_dim, bool store_values)
    : page_size_(config.page_size),
      head_dim_(head_dim),
      num_pages_(config.num_pages),
      pages_(config.num_pages) {
  if (config.allocate_storage) {
    k_.resize(static_cast<size_t>(config.num_pages) * config.page_size * head_dim);
    if (store_values) v_.resize(k_.size());
  }
  free_.reserve(num_pages_);
  // Highest id at the bottom of the stack so pages are handed out 0, 1, 2, ...
  for (int32_t page = num_pages_ - 1; page >= 0; --page) free_.push_back(page);
}

absl::StatusOr<std::vector<int32_t>> KvPagePool::Allocate(int count, int32_t owner) {
  RAMI_CHECK(owner >= 0, "KV page owner %d", owner);
  if (count < 0 || count > free_pages()) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache: ", count, " pages needed, ",
                                                     free_pages(), " of ", num_pages_, " free"));
  }
  std::vector<int32_t> pages(free_.rbegin(), free_.rbegin() + count);
  free_.resize(free_.size() - count);
  for (int32_t page : pages) pages_[page] = {.refs = 1, .owners = owner};
  allocated_total_ += count;
  return pages;
}

void KvPagePool::AddShared(int32_t owner, int64_t delta) {
  if (static_cast<size_t>(owner) >= shared_.size()) shared_.resize(owner + 1, 0);
  shared_[owner] += delta;
}

void KvPagePool::Retain(int32_t page, int32_t owner) {
  RAMI_CHECK(page >= 0 && page < num_pages_ && pages_[page].refs > 0 && owner >= 0,
             "retain of free KV page %d", page);
  PageRefs& p = pages_[page];
  if (p.refs == 1) AddShared(p.owners, 1);  // its sole owner shares it from now on
  AddShared(owner, 1);
  ++p.refs;
  p.owners ^= owner;
}

void KvPagePool::Release(int32_t page, int32_t owner) {
  RAMI_CHECK(page >= 0 && page < num_pages_ && pages_[page].refs > 0 && owner >= 0,
             "release of free KV page %d", page);
  PageRefs& p = pages_[page];
  p.owners ^= owner;
  if (p.refs > 1) {
    AddShared(owner, -1);
    if (p.refs == 2) AddShared(p.owners, -1);  // the one left holds it alone now
  }
  if (--p.refs == 0) {
    free_.push_back(page);
    ++freed_total_;
  }
}

float* KvPagePool::k(int32_t page, int slot) {
  return k_.data() + (static_cast<int64_t>(page) * page_size_ + slot) * head_dim_;
}

float* KvPagePool::v(int32_t page, int slot) {
  return v_.data() + (static_cast<int64_t>(page) * page_size_ + slot) * head_dim_;
}

void KvPagePool::CopySlots(int32_t src, int32_t dst, int count) {
  if (copy_log_ != nullptr) copy_log_->push_back({src, 0, dst, 0, count});
  if (k_.empty()) return;  // accounting only
  std::copy_n(k(src, 0), static_cast<size_t>(count) * head_dim_, k(dst, 0));
  if (!v_.empty()) std::copy_n(v(src, 0), static_cast<size_t>(count) * head_dim_, v(dst, 0));
}

void KvPagePool::CopySlot(int32_t src, int src_slot, int32_t dst, int dst_slot) {
  if (copy_log_ != nullptr) copy_log_->push_back({src, src_slot, dst, dst_slot, 1});
  if (k_.empty()) return;  // accounting only
  std::copy_n(k(src, src_slot), head_dim_, k(dst, dst_slot));
  if (!v_.empty()) std::copy_n(v(src, src_slot), head_dim_, v(dst, dst_slot));
}

}  // namespace rami::kv
