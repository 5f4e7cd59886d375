// CublasLtGemm: the GPU linear layer y = x · Wᵀ through cuBLASLt, with the CPU twin's layout
// (kernels/linear.h: row-major x [m, k], W in Hugging Face layout [n, k], y [m, n]). bf16 in and
// out with fp32 accumulation (production), or fp32 throughout (exactness tests; no TF32).
// Host code: it owns a cuBLASLt handle, one workspace and a per-shape plan cache.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rami::kernels {

enum class GemmDtype { kBf16, kF32 };

struct GemmParams {
  const void* x = nullptr;  // [m, k] row-major, `dtype`
  const void* w = nullptr;  // [n, k] row-major, `dtype` (out_features × in_features)
  void* y = nullptr;        // [m, n] row-major, `dtype`; must not overlap x or w
  int m = 0;                // tokens (0: nothing to do)
  int n = 0;                // out_features
  int k = 0;                // in_features
  GemmDtype dtype = GemmDtype::kBf16;
  // Strided rows and batches; the defaults give the dense single GEMM above. Batch b reads
  // x_b [m, k] at x + b·stride_x with rows ldx apart and W_b dense [n, k] at w + b·stride_w,
  // and writes y_b [m, n] at y + b·stride_y with rows ldy apart. MLA's per-head absorption is
  // one call: x = q with ldx = H·qk, stride_x = qk; w = W_uk per head, stride_w = lora·nope;
  // y with ldy = H·row, stride_y = row; batch = H. With batch > 1, stride_x and stride_w are
  // ≥ 0 (0: one operand shared by every batch) and stride_y ≥ n (y's batches must not overlap).
  int ldx = 0;           // elements between rows of x (0: k); ≥ k
  int ldy = 0;           // elements between rows of y (0: n); ≥ n
  int batch = 1;         // y_b = x_b · W_bᵀ for b in [0, batch)
  int64_t stride_x = 0;  // elements between batches of x, w, y (ignored when batch == 1)
  int64_t stride_w = 0;
  int64_t stride_y = 0;
};

// Not thread-safe, and its one workspace serves one stream at a time: use one object per
// compute stream (the worker has one). Plans (cuBLASLt descriptors + the heuristic's algorithm)
// are cached per (dtype, m, n, k, ldx, ldy, batch, strides, pointer alignments), so a decode
// step's GEMMs query the heuristic once per shape and then only launch — which also makes Run
// capturable in a CUDA graph after a first eager call per shape.
class CublasLtGemm {
 public:
  // 32 MiB: what NVIDIA recommends for Hopper's cuBLASLt kernels.
  static constexpr size_t kDefaultWorkspaceBytes = size_t{32} << 20;

  // On the current device. FailedPrecondition without a CUDA device.
  static absl::StatusOr<std::unique_ptr<CublasLtGemm>> Create(
      size_t workspace_bytes = kDefaultWorkspaceBytes);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // Enqueues y = x · Wᵀ (per batch) on `stream`. InvalidArgument for bad shapes, row or batch
  // strides, or null pointers; Unimplemented when cuBLASLt has no algorithm for the shape and
  // alignment (e.g. bf16 rows or batch strides whose byte length is not a multiple of 16, on
  // some versions); Internal for a cuBLASLt error.
  absl::Status Run(const GemmParams& p, cudaStream_t stream);

  // Distinct plans so far (tests check the cache is hit).
  size_t cached_plans() const;

 private:
  struct State;
  explicit CublasLtGemm(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rami::kernels
