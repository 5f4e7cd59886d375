// CPU twin of the per-step KV slot copies.
#include "kernels/kv_copy.h"

#include <cstring>
#include <initializer_list>

namespace rami::kernels {

void KvCopyCpu(const KvCopyParams& p) {
  const int64_t slot_bytes = static_cast<int64_t>(p.head_dim) * DeviceDTypeSize(p.dtype);
  for (int i = 0; i < p.num_ops; ++i) {
    const KvCopyOp& op = p.ops[i];
    const int64_t src =
        (static_cast<int64_t>(op.src_page) * p.page_size + op.src_slot) * slot_bytes;
    const int64_t dst =
        (static_cast<int64_t>(op.dst_page) * p.page_size + op.dst_slot) * slot_bytes;
    for (void* pool : {p.k_pool, p.v_pool}) {
      if (pool == nullptr) continue;  // a K-only pool
      auto* bytes = static_cast<uint8_t*>(pool);
      std::memmove(bytes + dst, bytes + src, op.num_slots * slot_bytes);
    }
  }
}

}  // namespace rami::kernels
