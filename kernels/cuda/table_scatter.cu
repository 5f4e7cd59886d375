// One grid-stride launch over all writes of a step's page-table delta (kernels/table_scatter.h).
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_kernels.h"

namespace rami::kernels {
namespace {

__global__ void TableScatterKernel(TableScatterParams p) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // Find the segment (8 of them: a linear walk is cheaper than anything clever), then the
    // write (w) and the entry of its run (r) this thread sets.
    int64_t j = i;
    int seg = 0;
    while (seg < kScatterSegments - 1 &&
           j >= int64_t{p.segments[seg].count} * p.segments[seg].run) {
      j -= int64_t{p.segments[seg].count} * p.segments[seg].run;
      ++seg;
    }
    const TableScatterSegment& s = p.segments[seg];
    const int64_t w = j / s.run, r = j % s.run;
    const int64_t entry = int64_t{s.index[w]} * s.run + r;
    if (seg == kScatterSegments - 1) {
      static_cast<uint8_t*>(s.table)[entry] = static_cast<const uint8_t*>(s.value)[w];
    } else {
      static_cast<int32_t*>(s.table)[entry] = static_cast<const int32_t*>(s.value)[w];
    }
  }
}

}  // namespace

cudaError_t TableScatterCuda(const TableScatterParams& p, cudaStream_t stream) {
  if (p.total == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = (p.total + kThreads - 1) / kThreads;
  TableScatterKernel<<<static_cast<unsigned>(blocks < 1024 ? blocks : 1024), kThreads, 0, stream>>>(
      p);
  return cudaGetLastError();
}

}  // namespace rami::kernels
