// TableScatterCpu: the writes of each segment in order, each over its run of entries.
#include "kernels/table_scatter.h"

namespace rami::kernels {

void TableScatterCpu(const TableScatterParams& p) {
  for (int s = 0; s < kScatterSegments; ++s) {
    const TableScatterSegment& seg = p.segments[s];
    for (int32_t i = 0; i < seg.count; ++i) {
      for (int64_t e = int64_t{seg.index[i]} * seg.run; e < int64_t{seg.index[i] + 1} * seg.run;
           ++e) {
        if (s == kScatterSegments - 1) {
          static_cast<uint8_t*>(seg.table)[e] = static_cast<const uint8_t*>(seg.value)[i];
        } else {
          static_cast<int32_t*>(seg.table)[e] = static_cast<const int32_t*>(seg.value)[i];
        }
      }
    }
  }
}

}  // namespace rami::kernels
