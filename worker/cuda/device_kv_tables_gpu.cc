// Device page tables updated by per-step deltas; see device_kv_tables_gpu.h.
#include "worker/cuda/device_kv_tables_gpu.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_kernels.h"
#include "worker/cuda/cuda_status.h"

namespace rami::cuda {

using kv::KvTablesDelta;
using kv::TableWrites;

DeviceKvTablesGpu::~DeviceKvTablesGpu() {
  // Stream-ordered frees after the last use (the buffers come from cudaMallocAsync), then the
  // host side once the stream is idle.
  for (Buffer* b : {&page_table_, &flags_, &staging_}) {
    if (b->ptr != nullptr) cudaFreeAsync(b->ptr, stream_);
  }
  for (Buffer& b : fields_) {
    if (b.ptr != nullptr) cudaFreeAsync(b.ptr, stream_);
  }
  cudaStreamSynchronize(stream_);
  if (pinned_ != nullptr) cudaFreeHost(pinned_);
  if (copied_ != nullptr) cudaEventDestroy(copied_);
}

// Capacities grow geometrically (per-stream arrays grow by one slot at a time); a kept
// buffer's old content is copied on the device and its tail zeroed, as KvTablesHost::Apply
// does on the host.
absl::Status DeviceKvTablesGpu::Grow(Buffer& buffer, int64_t bytes, bool keep) {
  if (bytes <= buffer.bytes) return absl::OkStatus();
  const int64_t capacity = std::max<int64_t>({bytes, 2 * buffer.bytes, 4096});
  void* fresh = nullptr;
  RAMI_CUDA_OK(cudaMallocAsync(&fresh, capacity, stream_));
  int64_t kept = 0;
  if (keep && buffer.bytes > 0) {
    kept = buffer.bytes;
    RAMI_CUDA_OK(cudaMemcpyAsync(fresh, buffer.ptr, kept, cudaMemcpyDeviceToDevice, stream_));
  }
  if (keep) {
    RAMI_CUDA_OK(cudaMemsetAsync(static_cast<char*>(fresh) + kept, 0, capacity - kept, stream_));
  }
  if (buffer.ptr != nullptr) RAMI_CUDA_OK(cudaFreeAsync(buffer.ptr, stream_));
  buffer = {fresh, capacity};
  return absl::OkStatus();
}

absl::Status DeviceKvTablesGpu::Apply(const KvTablesDelta& d) {
  if (copied_ == nullptr) {
    RAMI_CUDA_OK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming));
  }
  if (absl::Status s = Grow(page_table_, d.page_table_size * 4, true); !s.ok()) return s;
  for (Buffer& b : fields_) {
    if (absl::Status s = Grow(b, d.num_streams * 4, true); !s.ok()) return s;
  }
  if (absl::Status s = Grow(flags_, d.flags_size, true); !s.ok()) return s;
  flag_stride_ = static_cast<int32_t>(d.flag_stride);

  // Pack: per int32 segment its indices then its values; the flags' indices, then their bytes.
  const std::array<const TableWrites<int32_t>*, kernels::kScatterSegments - 1> ints = {
      &d.page_table,  &d.kept_page_start, &d.kept_count, &d.window_page_start,
      &d.window_base, &d.window_start,    &d.flag_start};
  std::array<void*, kernels::kScatterSegments - 1> tables = {
      page_table_.ptr, fields_[0].ptr, fields_[1].ptr, fields_[2].ptr,
      fields_[3].ptr,  fields_[4].ptr, fields_[5].ptr};
  int64_t bytes = 0;
  for (const auto* w : ints) bytes += 8 * static_cast<int64_t>(w->size());
  bytes += 5 * static_cast<int64_t>(d.flags.size());
  if (bytes == 0) return absl::OkStatus();

  // The previous copy must have read the pinned buffer before it is rewritten.
  RAMI_CUDA_OK(cudaEventSynchronize(copied_));
  if (bytes > pinned_bytes_) {
    if (pinned_ != nullptr) RAMI_CUDA_OK(cudaFreeHost(pinned_));
    const int64_t capacity = std::max<int64_t>(bytes, 2 * pinned_bytes_);
    pinned_ = nullptr;
    pinned_bytes_ = 0;  // stays 0 if the allocation fails: the next Apply allocates again
    RAMI_CUDA_OK(cudaMallocHost(&pinned_, capacity));
    pinned_bytes_ = capacity;
  }
  if (absl::Status s = Grow(staging_, bytes, false); !s.ok()) return s;

  kernels::TableScatterParams p;
  char* host = static_cast<char*>(pinned_);
  char* dev = static_cast<char*>(staging_.ptr);
  int64_t at = 0;
  auto put = [&](const void* src, int64_t n) {
    if (n > 0) std::memcpy(host + at, src, n);
    const void* where = dev + at;
    at += n;
    return where;
  };
  for (int k = 0; k < kernels::kScatterSegments - 1; ++k) {
    const TableWrites<int32_t>& w = *ints[k];
    const int64_t n = static_cast<int64_t>(w.size());
    p.segments[k].table = tables[k];
    p.segments[k].index = static_cast<const int32_t*>(put(w.index.data(), 4 * n));
    p.segments[k].value = put(w.value.data(), 4 * n);
    p.segments[k].count = static_cast<int32_t>(n);
    // window_base and window_start: one write per slot (KvTablesDelta::slot_streams).
    p.segments[k].run = (ints[k] == &d.window_base || ints[k] == &d.window_start)
                            ? static_cast<int32_t>(d.slot_streams)
                            : 1;
    p.total += n * p.segments[k].run;
  }
  const int64_t nf = static_cast<int64_t>(d.flags.size());
  kernels::TableScatterSegment& f = p.segments[kernels::kScatterSegments - 1];
  f.table = flags_.ptr;
  f.index = static_cast<const int32_t*>(put(d.flags.index.data(), 4 * nf));
  f.value = put(d.flags.value.data(), nf);
  f.count = static_cast<int32_t>(nf);
  p.total += nf;

  RAMI_CUDA_OK(cudaMemcpyAsync(staging_.ptr, pinned_, at, cudaMemcpyHostToDevice, stream_));
  RAMI_CUDA_OK(cudaEventRecord(copied_, stream_));
  RAMI_CUDA_OK(kernels::TableScatterCuda(p, stream_));
  return absl::OkStatus();
}

void DeviceKvTablesGpu::FillView(kernels::KvCacheCudaView* view) const {
  view->page_table = static_cast<const int32_t*>(page_table_.ptr);
  view->kept_page_start = static_cast<const int32_t*>(fields_[0].ptr);
  view->kept_count = static_cast<const int32_t*>(fields_[1].ptr);
  view->window_page_start = static_cast<const int32_t*>(fields_[2].ptr);
  view->window_base = static_cast<const int32_t*>(fields_[3].ptr);
  view->window_start = static_cast<const int32_t*>(fields_[4].ptr);
  view->flag_start = static_cast<const int32_t*>(fields_[5].ptr);
  view->flags = static_cast<uint8_t*>(flags_.ptr);
  view->flag_stride = flag_stride_;
}

int64_t DeviceKvTablesGpu::device_bytes() const {
  int64_t total = page_table_.bytes + flags_.bytes + staging_.bytes;
  for (const Buffer& b : fields_) total += b.bytes;
  return total;
}

}  // namespace rami::cuda
