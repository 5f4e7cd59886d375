// DeviceKvTablesGpu: the device copy of the page tables (kernels/cuda/kv_cache_view.h) that
// DeviceKvTables (device_kv_tables.h) mirrors on the host. It owns the device arrays, grows them
// when a delta says so (device-to-device copy of the old content, zeroed tail) and applies each
// step's delta with one host-to-device copy from a pinned staging buffer and one scatter launch,
// all on the caller's stream.
//
// Pointers change when a table grows: refill the view (FillView) after every Apply, and
// recapture a CUDA graph whose view was filled before a growth.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/kv_cache_view.h"
#include "worker/kv/device_kv_tables.h"

namespace rami::cuda {

class DeviceKvTablesGpu {
 public:
  // `stream` must outlive this object (the destructor frees on it).
  explicit DeviceKvTablesGpu(cudaStream_t stream) : stream_(stream) {}
  ~DeviceKvTablesGpu();
  DeviceKvTablesGpu(const DeviceKvTablesGpu&) = delete;
  DeviceKvTablesGpu& operator=(const DeviceKvTablesGpu&) = delete;

  // Grows the tables to the delta's sizes and scatters its writes (stream-ordered; returns
  // once the writes are packed into pinned memory and the copy is queued).
  absl::Status Apply(const kv::KvTablesDelta& delta);

  // Sets the table pointers of `view`; pools, page size, head dim, window and dtype are the
  // caller's. Flags stay null when the policy evicts nothing.
  void FillView(kernels::KvCacheCudaView* view) const;

  int64_t device_bytes() const;  // tables + staging, for the memory report

 private:
  struct Buffer {
    void* ptr = nullptr;
    int64_t bytes = 0;  // capacity
  };
  // Per-stream arrays in KvTablesDelta order: kept_page_start, kept_count, window_page_start,
  // window_base, window_start, flag_start.
  static constexpr int kStreamFields = 6;

  absl::Status Grow(Buffer& buffer, int64_t bytes, bool keep);

  cudaStream_t stream_;
  Buffer page_table_;                         // int32 [page_table_size]
  std::array<Buffer, kStreamFields> fields_;  // int32 [num_streams] each
  Buffer flags_;                              // uint8 [flags_size]
  int32_t flag_stride_ = 1;                   // the deltas' (KvTablesDelta::flag_stride)
  Buffer staging_;                            // the delta's writes on the device
  void* pinned_ = nullptr;                    // the delta's writes on the host (pinned)
  int64_t pinned_bytes_ = 0;
  cudaEvent_t copied_ = nullptr;  // the last staging copy finished reading
};

}  // namespace rami::cuda
