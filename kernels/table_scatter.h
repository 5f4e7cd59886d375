// The device update of the KV page tables (worker/cuda/device_kv_tables_gpu.h): one launch
// scatters every (index, value) write of a step's delta into its table — seven int32 tables
// and the uint8 flags; a write of a segment with run r sets r consecutive entries (a field
// shared by all streams of a sequence, written once per sequence). TableScatterCpu is the twin of
// TableScatterCuda (kernels/cuda/table_scatter.h); both take these params with pointers of their
// own memory. No Abseil: included by .cu files.
#pragma once

#include <cstdint>

namespace rami::kernels {

inline constexpr int kScatterSegments = 8;  // 7 int32 tables, then the uint8 flags

struct TableScatterSegment {
  void* table = nullptr;           // int32_t[] (segments 0–6) or uint8_t[] (segment 7)
  const int32_t* index = nullptr;  // [count] entries of `table`
  const void* value = nullptr;     // [count] int32_t or uint8_t
  int32_t count = 0;
  int32_t run = 1;  // write j sets entries [index[j] · run, (index[j] + 1) · run) to value[j]
};

struct TableScatterParams {
  TableScatterSegment segments[kScatterSegments];  // the last one holds bytes
  int64_t total = 0;                               // entries set: Σ count · run
};

// No op when total == 0. Writes of one call never hit the same entry twice (the host emits at
// most one write per entry and step), so their order does not matter.
void TableScatterCpu(const TableScatterParams& p);

}  // namespace rami::kernels
