// GPU MoE experts: host-side permutation (counting sort of the (token, slot) pairs by expert,
// tokens in order within an expert), per-expert cuBLASLt GEMMs and SwiGLU over each expert's
// contiguous rows, then the weighted combine kernel.
#include "kernels/cuda/moe_experts.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/moe.h"

namespace rami::kernels {
namespace {

constexpr size_t kAlign = 256;

size_t AlignUp(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

int ElementBytes(GemmDtype dtype) { return dtype == GemmDtype::kBf16 ? 2 : 4; }

DeviceDType ToDeviceDType(GemmDtype dtype) {
  switch (dtype) {
    case GemmDtype::kBf16:
      return DeviceDType::kBF16;
    case GemmDtype::kF32:
      return DeviceDType::kF32;
  }
  return DeviceDType::kBF16;
}

// Byte offsets of the workspace's arrays for R = num_tokens · top_k rows.
struct MoeWorkspaceLayout {
  size_t x_perm, gate_up, act, y, src_row, slot_row, weights, total;
};
MoeWorkspaceLayout Layout(int num_tokens, int top_k, int hidden, int inter, GemmDtype dtype) {
  const size_t rows = static_cast<size_t>(num_tokens) * top_k;
  const size_t es = ElementBytes(dtype);
  MoeWorkspaceLayout l;
  l.x_perm = 0;
  l.gate_up = l.x_perm + AlignUp(rows * hidden * es);
  l.act = l.gate_up + AlignUp(rows * 2 * inter * es);
  l.y = l.act + AlignUp(rows * inter * es);
  l.src_row = l.y + AlignUp(rows * hidden * es);
  l.slot_row = l.src_row + AlignUp(rows * sizeof(int32_t));
  l.weights = l.slot_row + AlignUp(rows * sizeof(int32_t));
  l.total = l.weights + AlignUp(rows * sizeof(float));
  return l;
}

absl::Status CudaStatus(const char* what, cudaError_t err) {
  if (err == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(err)));
}

}  // namespace

size_t MoeExpertsWorkspaceBytes(int num_tokens, int top_k, int hidden, int inter, GemmDtype dtype) {
  return Layout(num_tokens, top_k, hidden, inter, dtype).total;
}

absl::Status RunMoeExpertsCuda(const MoeExpertsCudaParams& p, CublasLtGemm& gemm,
                               cudaStream_t stream) {
  if (p.num_tokens < 0 || p.top_k <= 0 || p.num_experts <= 0 || p.hidden <= 0 || p.inter <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("MoE experts: bad shape tokens ", p.num_tokens,
                                                   " top_k ", p.top_k, " experts ", p.num_experts,
                                                   " hidden ", p.hidden, " inter ", p.inter));
  }
  if (p.num_tokens == 0) return absl::OkStatus();
  if (p.x == nullptr || p.out == nullptr || p.expert_ids == nullptr || p.weights == nullptr ||
      p.gate_up == nullptr || p.down == nullptr || p.workspace == nullptr) {
    return absl::InvalidArgumentError("MoE experts: null pointer");
  }
  const MoeWorkspaceLayout lay = Layout(p.num_tokens, p.top_k, p.hidden, p.inter, p.dtype);
  if (p.workspace_bytes < lay.total) {
    return absl::InvalidArgumentError(absl::StrCat("MoE experts: workspace of ", p.workspace_bytes,
                                                   " bytes, ", lay.total, " needed"));
  }
  const int rows = p.num_tokens * p.top_k;
  // Counting sort by expert; rows of an expert in token order.
  std::vector<int32_t> count(p.num_experts + 1, 0);
  for (int i = 0; i < rows; ++i) {
    const int32_t e = p.expert_ids[i];
    if (e < 0 || e >= p.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("MoE experts: expert id ", e, " of slot ", i,
                                                     " not in [0, ", p.num_experts, ")"));
    }
    ++count[e + 1];
  }
  for (int e = 0; e < p.num_experts; ++e) {  // checked before anything is enqueued
    if (count[e + 1] > 0 && (p.gate_up[e] == nullptr || p.down[e] == nullptr)) {
      return absl::InvalidArgumentError(absl::StrCat("MoE experts: expert ", e, " has no weights"));
    }
  }
  std::vector<int32_t> first(count.size());
  std::partial_sum(count.begin(), count.end(), first.begin());  // first[e]: expert e's first row
  std::vector<int32_t> next(first.begin(), first.end() - 1);
  std::vector<int32_t> src_row(rows), row_of_slot(rows);
  for (int i = 0; i < rows; ++i) {
    const int32_t r = next[p.expert_ids[i]]++;
    src_row[r] = i / p.top_k;
    row_of_slot[i] = r;
  }
  // Each token's slots in ascending expert order (the CPU's accumulation order). Rows of a
  // lower expert come first, so sorting a token's rows sorts its experts.
  std::vector<int32_t> slot_row(rows);
  std::vector<float> slot_weight(rows);
  std::vector<int> order(p.top_k);
  for (int t = 0; t < p.num_tokens; ++t) {
    const int64_t base = static_cast<int64_t>(t) * p.top_k;
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return row_of_slot[base + a] < row_of_slot[base + b]; });
    for (int j = 0; j < p.top_k; ++j) {
      slot_row[base + j] = row_of_slot[base + order[j]];
      slot_weight[base + j] = p.weights[base + order[j]];
    }
  }

  char* ws = static_cast<char*>(p.workspace);
  auto* d_src_row = reinterpret_cast<int32_t*>(ws + lay.src_row);
  auto* d_slot_row = reinterpret_cast<int32_t*>(ws + lay.slot_row);
  auto* d_weights = reinterpret_cast<float*>(ws + lay.weights);
  const size_t index_bytes = sizeof(int32_t) * rows;
  absl::Status status = CudaStatus(
      "MoE experts upload",
      cudaMemcpyAsync(d_src_row, src_row.data(), index_bytes, cudaMemcpyHostToDevice, stream));
  if (!status.ok()) return status;
  status = CudaStatus(
      "MoE experts upload",
      cudaMemcpyAsync(d_slot_row, slot_row.data(), index_bytes, cudaMemcpyHostToDevice, stream));
  if (!status.ok()) return status;
  status = CudaStatus("MoE experts upload",
                      cudaMemcpyAsync(d_weights, slot_weight.data(), sizeof(float) * rows,
                                      cudaMemcpyHostToDevice, stream));
  if (!status.ok()) return status;

  const DeviceDType dtype = ToDeviceDType(p.dtype);
  const size_t es = ElementBytes(p.dtype);
  char* x_perm = ws + lay.x_perm;
  char* gate_up = ws + lay.gate_up;
  char* act = ws + lay.act;
  char* y = ws + lay.y;
  status = CudaStatus("MoE gather", MoeGatherCuda({.src = p.x,
                                                   .dst = x_perm,
                                                   .src_row = d_src_row,
                                                   .num_rows = rows,
                                                   .cols = p.hidden,
                                                   .dtype = dtype},
                                                  stream));
  if (!status.ok()) return status;
  for (int e = 0; e < p.num_experts; ++e) {
    const int n = count[e + 1];
    if (n == 0) continue;
    const size_t r0 = first[e];
    status = gemm.Run({.x = x_perm + r0 * p.hidden * es,
                       .w = p.gate_up[e],
                       .y = gate_up + r0 * 2 * p.inter * es,
                       .m = n,
                       .n = 2 * p.inter,
                       .k = p.hidden,
                       .dtype = p.dtype},
                      stream);
    if (!status.ok()) return status;
    status = CudaStatus("MoE SwiGLU", SwigluCuda({.gate_up = gate_up + r0 * 2 * p.inter * es,
                                                  .out = act + r0 * p.inter * es,
                                                  .rows = n,
                                                  .cols = p.inter,
                                                  .dtype = dtype},
                                                 stream));
    if (!status.ok()) return status;
    status = gemm.Run({.x = act + r0 * p.inter * es,
                       .w = p.down[e],
                       .y = y + r0 * p.hidden * es,
                       .m = n,
                       .n = p.hidden,
                       .k = p.inter,
                       .dtype = p.dtype},
                      stream);
    if (!status.ok()) return status;
  }
  return CudaStatus("MoE combine", MoeCombineCuda({.expert_out = y,
                                                   .slot_row = d_slot_row,
                                                   .weights = d_weights,
                                                   .out = p.out,
                                                   .num_tokens = p.num_tokens,
                                                   .top_k = p.top_k,
                                                   .cols = p.hidden,
                                                   .dtype = dtype},
                                                  stream));
}

}  // namespace rami::kernels
