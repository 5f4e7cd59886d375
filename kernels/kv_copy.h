// KV slot copies planned on the host and applied in one launch per step: promotions of tokens
// that left the window with flag 0 into their kept slot (worker/kv/kv_stream.cc CommitAppend)
// and a fork's private copies of partial tail pages (ForkStream). KvCopyCpu is the twin of
// KvCopyCuda (kernels/cuda/kv_update.h); both copy raw elements, so they serve any dtype.
#pragma once

#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::kernels {

// Copies slots [src_slot, src_slot + num_slots) of src_page to [dst_slot, …) of dst_page, for
// K and V (a promotion copies 1 slot, a fork tail copy its used slots; ≤ page_size).
struct KvCopyOp {
  int32_t src_page = 0;
  int32_t src_slot = 0;
  int32_t dst_page = 0;
  int32_t dst_slot = 0;
  int32_t num_slots = 0;
};

struct KvCopyParams {
  void* k_pool = nullptr;         // [num_pages, page_size, head_dim] dtype
  void* v_pool = nullptr;         // same, or null: a K-only pool (MLA)
  const KvCopyOp* ops = nullptr;  // [num_ops]; no op reads a slot another op writes
  int num_ops = 0;
  int page_size = 0;
  int head_dim = 0;
  DeviceDType dtype = DeviceDType::kF32;
};

void KvCopyCpu(const KvCopyParams& p);

}  // namespace rami::kernels
