// VisibleKeys: the keys one decode query sees in one stream of the DMS layout (dms.md §3–4),
// for one split of a split-KV launch — shared by the GQA and MLA decode kernels. The index
// space is [0, kept) the kept list, then the window positions window_start … pos. A padding
// token (negative stream) sees no key.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/kv_cache_view.h"

namespace rami::kernels::cuda_detail {

struct VisibleKeys {
  int32_t stream = 0, pos = 0, kept = 0, window_start = 0, window_base = 0;
  int32_t begin = 0, end = 0;      // this split's keys [begin, end)
  const uint8_t* flags = nullptr;  // the stream's window flags, or null (nothing evicted)

  // The pool row (page · page_size + slot) of visible key j, or −1 when j is past the split
  // or an evicted window token (outside W and flagged).
  __device__ int64_t Row(const KvCacheCudaView& c, int32_t j) const {
    if (j >= end) return -1;
    int32_t list_start, index;
    if (j < kept) {
      list_start = c.kept_page_start[stream];
      index = j;
    } else {
      const int32_t key_pos = window_start + (j - kept);
      index = key_pos - window_base;
      list_start = c.window_page_start[stream];
      if (flags != nullptr && pos - key_pos > c.window &&
          flags[static_cast<int64_t>(index) * c.flag_stride] != 0) {
        return -1;
      }
    }
    const int32_t page = c.page_table[list_start + index / c.page_size];
    return static_cast<int64_t>(page) * c.page_size + index % c.page_size;
  }
};

// The keys of split `split` (of num_splits; DecodeSplitKeys in attention.h) for the query at
// `pos` in `stream`. A negative stream is a padding token: no table entry is read and the
// range is empty, so the kernels write zeros (or an lse of −inf) for it.
__device__ inline VisibleKeys MakeVisibleKeys(const KvCacheCudaView& c, int32_t stream, int32_t pos,
                                              int split, int num_splits, int32_t keys_per_split) {
  VisibleKeys k;
  if (stream < 0) return k;  // begin = end = 0
  k.stream = stream;
  k.pos = pos;
  k.kept = c.kept_count[stream];
  k.window_start = c.window_start[stream];
  k.window_base = c.window_base[stream];
  const int32_t n = k.kept + max(0, pos - k.window_start + 1);
  const DecodeKeyRange range = DecodeSplitKeys(n, split, num_splits, keys_per_split);
  k.begin = range.begin;
  k.end = range.end;
  k.flags = c.flags != nullptr ? c.flags + c.flag_start[stream] : nullptr;
  return k;
}

}  // namespace rami::kernels::cuda_detail
