// The CUDA kernels' view of a step's DMS-layout streams (dms.md §4; CPU view and geometry in
// kernels/paged_attention.h): same page lists, with device pointers, pools of `dtype`
// elements, and the window flags flat (one byte per window slot, stream s's slot i at
// flags[flag_start[s] + i · flag_stride]: worker/kv/device_kv_tables.h keeps a sequence's flags
// row-major, a row per slot of all its streams) so the device tables can be updated with
// per-step deltas.
#pragma once

#include <cstdint>

#include "kernels/cuda/device_dtype.h"

namespace rami::kernels {

struct KvCacheCudaView {
  void* k_pool = nullptr;                      // [num_pages, page_size, head_dim] dtype
  void* v_pool = nullptr;                      // [num_pages, page_size, head_dim] dtype
  const int32_t* page_table = nullptr;         // page ids of all streams' lists
  const int32_t* kept_page_start = nullptr;    // [num_streams] offset into page_table
  const int32_t* kept_count = nullptr;         // [num_streams] tokens in kept
  const int32_t* window_page_start = nullptr;  // [num_streams] offset into page_table
  const int32_t* window_base = nullptr;        // [num_streams] position of window slot 0
  const int32_t* window_start = nullptr;       // [num_streams] oldest position still in window
  uint8_t* flags = nullptr;                    // flat window flags; null: nothing is evicted
  const int32_t* flag_start = nullptr;         // [num_streams] offset of slot 0's flag in flags
  int32_t flag_stride = 1;                     // offset between a stream's consecutive slots
  int page_size = 0;
  int head_dim = 0;    // 64 or 128
  int32_t window = 0;  // W; dense uses a window longer than any sequence
  DeviceDType dtype = DeviceDType::kBF16;
};

}  // namespace rami::kernels
