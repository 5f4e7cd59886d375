// CublasLtGemm: row-major y = x · Wᵀ (strided, batched) mapped onto cuBLASLt's column-major
// GEMM, with the heuristic's choice cached per shape and one workspace reused by every call.
#include "kernels/cuda/gemm.h"

#include <cublasLt.h>

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/device.h"

namespace rami::kernels {
namespace {

const char* DtypeName(GemmDtype dtype) {
  switch (dtype) {
    case GemmDtype::kBf16:
      return "bf16";
    case GemmDtype::kF32:
      return "f32";
  }
  return "?";
}

cudaDataType_t CudaType(GemmDtype dtype) {
  switch (dtype) {
    case GemmDtype::kBf16:
      return CUDA_R_16BF;
    case GemmDtype::kF32:
      return CUDA_R_32F;
  }
  return CUDA_R_32F;
}

int ElementBytes(GemmDtype dtype) {
  switch (dtype) {
    case GemmDtype::kBf16:
      return 2;
    case GemmDtype::kF32:
      return 4;
  }
  return 4;
}

// The largest power of two (≤ 16, cuBLASLt's widest vector access) dividing the address of
// every batch's operand: the base address and, when batched, the batch stride in bytes (the
// preference is about each batch's pointer, which cuBLASLt forms as base + b·stride).
uint32_t Alignment(const void* p, int batch, int64_t stride_bytes) {
  uint64_t bits = reinterpret_cast<uintptr_t>(p);
  if (batch > 1) bits |= static_cast<uint64_t>(stride_bytes);
  uint32_t alignment = 16;
  while (alignment > 1 && bits % alignment != 0) alignment /= 2;
  return alignment;
}

absl::Status LtError(const char* call, cublasStatus_t status) {
  return absl::InternalError(absl::StrCat("cuBLASLt ", call, ": ", cublasLtGetStatusString(status),
                                          " (", static_cast<int>(status), ")"));
}

#define RAMI_LT_RETURN_IF_ERROR(call)               \
  do {                                              \
    const cublasStatus_t rami_lt_status_ = (call);  \
    if (rami_lt_status_ != CUBLAS_STATUS_SUCCESS) { \
      return LtError(#call, rami_lt_status_);       \
    }                                               \
  } while (0)

// What the descriptors and the heuristic depend on, normalized (ld 0 → dense, strides 0 when
// batch == 1) so equivalent calls share a plan.
struct PlanKey {
  GemmDtype dtype;
  int m, n, k;
  int ldx, ldy;  // leading dimensions (≥ k, ≥ n)
  int batch;
  int64_t stride_x, stride_w, stride_y;  // elements; 0 when batch == 1
  uint32_t align_w, align_x, align_y;    // bytes, per batch (see Alignment)
  auto operator<=>(const PlanKey&) const = default;
};

// Human-readable shape for error messages.
std::string Describe(const PlanKey& key) {
  std::string shape = absl::StrCat(DtypeName(key.dtype), " m=", key.m, " n=", key.n, " k=", key.k);
  if (key.ldx != key.k || key.ldy != key.n) {
    absl::StrAppend(&shape, " ldx=", key.ldx, " ldy=", key.ldy);
  }
  if (key.batch > 1) {
    absl::StrAppend(&shape, " batch=", key.batch, " strides x/w/y ", key.stride_x, "/",
                    key.stride_w, "/", key.stride_y);
  }
  absl::StrAppend(&shape, " (alignment w/x/y ", key.align_w, "/", key.align_x, "/", key.align_y,
                  " bytes)");
  return shape;
}

// Sets a layout's strided-batch attributes (left at cuBLASLt's defaults for one batch, so
// unbatched plans stay exactly what they were).
cublasStatus_t SetBatch(cublasLtMatrixLayout_t layout, int batch, int64_t stride) {
  if (batch == 1) return CUBLAS_STATUS_SUCCESS;
  const int32_t count = batch;
  cublasStatus_t status = cublasLtMatrixLayoutSetAttribute(
      layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count));
  if (status != CUBLAS_STATUS_SUCCESS) return status;
  return cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                          &stride, sizeof(stride));
}

}  // namespace

// The descriptors of one shape and the algorithm the heuristic picked for it.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t w_layout = nullptr;  // A: W as column-major [k, n], ld k, transposed
  cublasLtMatrixLayout_t x_layout = nullptr;  // B: x as column-major [k, m], ld ldx
  cublasLtMatrixLayout_t y_layout = nullptr;  // C = D: y as column-major [n, m], ld ldy
  cublasLtMatmulAlgo_t algo = {};
  ~Plan() {
    if (y_layout != nullptr) cublasLtMatrixLayoutDestroy(y_layout);
    if (x_layout != nullptr) cublasLtMatrixLayoutDestroy(x_layout);
    if (w_layout != nullptr) cublasLtMatrixLayoutDestroy(w_layout);
    if (desc != nullptr) cublasLtMatmulDescDestroy(desc);
  }
};

struct CublasLtGemm::State {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;  // device, workspace_bytes
  size_t workspace_bytes = 0;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;

  ~State() {
    plans.clear();  // descriptors before the handle
    if (workspace != nullptr) cudaFree(workspace);
    if (handle != nullptr) cublasLtDestroy(handle);
  }

  // Builds the plan of `key`: row-major y[m,n] = x[m,k] · W[n,k]ᵀ is, read column-major,
  // yᵀ[n,m] = W[k,n]ᵀ · xᵀ[k,m] — cuBLASLt's "TN" GEMM with M = n, N = m, K = k, which every
  // bf16 tensor-core kernel supports. Row strides are the column-major leading dimensions;
  // batches are cuBLASLt's strided batches, one stride per operand.
  absl::Status MakePlan(const PlanKey& key, Plan& plan) {
    const cudaDataType_t type = CudaType(key.dtype);
    // fp32 accumulation for both modes; CUBLAS_COMPUTE_32F is true fp32 (no TF32 rounding).
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                           &transpose, sizeof(transpose)));
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                                           &none, sizeof(none)));
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan.w_layout, type, key.k, key.n, key.k));
    RAMI_LT_RETURN_IF_ERROR(
        cublasLtMatrixLayoutCreate(&plan.x_layout, type, key.k, key.m, key.ldx));
    RAMI_LT_RETURN_IF_ERROR(
        cublasLtMatrixLayoutCreate(&plan.y_layout, type, key.n, key.m, key.ldy));
    RAMI_LT_RETURN_IF_ERROR(SetBatch(plan.w_layout, key.batch, key.stride_w));
    RAMI_LT_RETURN_IF_ERROR(SetBatch(plan.x_layout, key.batch, key.stride_x));
    RAMI_LT_RETURN_IF_ERROR(SetBatch(plan.y_layout, key.batch, key.stride_y));

    cublasLtMatmulPreference_t preference = nullptr;
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&preference));
    const uint64_t max_workspace = workspace_bytes;
    cublasStatus_t status =
        cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &max_workspace, sizeof(max_workspace));
    // The pointers' real alignments, so the algorithm never assumes more than we give it.
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_w},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_x},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_y},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_y}};
    for (const auto& [attribute, bytes] : alignments) {
      if (status == CUBLAS_STATUS_SUCCESS) {
        status = cublasLtMatmulPreferenceSetAttribute(preference, attribute, &bytes, sizeof(bytes));
      }
    }
    cublasLtMatmulHeuristicResult_t result = {};
    int found = 0;
    if (status == CUBLAS_STATUS_SUCCESS) {
      status = cublasLtMatmulAlgoGetHeuristic(handle, plan.desc, plan.w_layout, plan.x_layout,
                                              plan.y_layout, plan.y_layout, preference, 1, &result,
                                              &found);
    }
    cublasLtMatmulPreferenceDestroy(preference);
    const std::string shape = Describe(key);
    if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && found == 0)) {
      return absl::UnimplementedError(absl::StrCat("cuBLASLt has no algorithm for ", shape));
    }
    if (status != CUBLAS_STATUS_SUCCESS) {
      return absl::InternalError(
          absl::StrCat("cuBLASLt heuristic for ", shape, ": ", cublasLtGetStatusString(status)));
    }
    plan.algo = result.algo;
    return absl::OkStatus();
  }
};

absl::StatusOr<std::unique_ptr<CublasLtGemm>> CublasLtGemm::Create(size_t workspace_bytes) {
  if (cuda::DeviceCount() == 0) {
    return absl::FailedPreconditionError("CublasLtGemm: no CUDA device");
  }
  auto state = std::make_unique<State>();
  RAMI_LT_RETURN_IF_ERROR(cublasLtCreate(&state->handle));
  if (workspace_bytes > 0) {
    if (const cudaError_t e = cudaMalloc(&state->workspace, workspace_bytes); e != cudaSuccess) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "CublasLtGemm: workspace of ", workspace_bytes, " bytes: ", cudaGetErrorString(e)));
    }
  }
  state->workspace_bytes = workspace_bytes;
  return std::unique_ptr<CublasLtGemm>(new CublasLtGemm(std::move(state)));
}

CublasLtGemm::CublasLtGemm(std::unique_ptr<State> state) : state_(std::move(state)) {}
CublasLtGemm::~CublasLtGemm() = default;

size_t CublasLtGemm::cached_plans() const { return state_->plans.size(); }

absl::Status CublasLtGemm::Run(const GemmParams& p, cudaStream_t stream) {
  if (p.m < 0 || p.n < 1 || p.k < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CublasLtGemm: bad shape m=", p.m, " n=", p.n, " k=", p.k));
  }
  const int ldx = p.ldx == 0 ? p.k : p.ldx;
  const int ldy = p.ldy == 0 ? p.n : p.ldy;
  if (ldx < p.k || ldy < p.n) {
    return absl::InvalidArgumentError(absl::StrCat("CublasLtGemm: row strides ldx=", p.ldx,
                                                   " ldy=", p.ldy, " below k=", p.k, " / n=", p.n));
  }
  if (p.batch < 1) {
    return absl::InvalidArgumentError(absl::StrCat("CublasLtGemm: batch=", p.batch));
  }
  // x and w may be shared by every batch (stride 0); y's batches must not overlap, which
  // needs at least a row's width between them.
  if (p.batch > 1 && (p.stride_x < 0 || p.stride_w < 0 || p.stride_y < p.n)) {
    return absl::InvalidArgumentError(absl::StrCat("CublasLtGemm: batch strides x/w/y ", p.stride_x,
                                                   "/", p.stride_w, "/", p.stride_y,
                                                   " (need ≥ 0, ≥ 0, ≥ n=", p.n, ")"));
  }
  if (p.m == 0) return absl::OkStatus();
  if (p.x == nullptr || p.w == nullptr || p.y == nullptr) {
    return absl::InvalidArgumentError("CublasLtGemm: null x, w or y");
  }
  const bool batched = p.batch > 1;
  const int64_t bytes = ElementBytes(p.dtype);
  const PlanKey key{.dtype = p.dtype,
                    .m = p.m,
                    .n = p.n,
                    .k = p.k,
                    .ldx = ldx,
                    .ldy = ldy,
                    .batch = p.batch,
                    .stride_x = batched ? p.stride_x : 0,
                    .stride_w = batched ? p.stride_w : 0,
                    .stride_y = batched ? p.stride_y : 0,
                    .align_w = Alignment(p.w, p.batch, p.stride_w * bytes),
                    .align_x = Alignment(p.x, p.batch, p.stride_x * bytes),
                    .align_y = Alignment(p.y, p.batch, p.stride_y * bytes)};
  auto it = state_->plans.find(key);
  if (it == state_->plans.end()) {
    auto plan = std::make_unique<Plan>();
    if (absl::Status s = state_->MakePlan(key, *plan); !s.ok()) return s;
    it = state_->plans.emplace(key, std::move(plan)).first;
  }
  const Plan& plan = *it->second;
  const float alpha = 1.0f, beta = 0.0f;  // scale type fp32 in both modes
  const cublasStatus_t status =
      cublasLtMatmul(state_->handle, plan.desc, &alpha, p.w, plan.w_layout, p.x, plan.x_layout,
                     &beta, p.y, plan.y_layout, p.y, plan.y_layout, &plan.algo, state_->workspace,
                     state_->workspace_bytes, stream);
  if (status == CUBLAS_STATUS_NOT_SUPPORTED) {
    return absl::UnimplementedError(absl::StrCat("cuBLASLt cannot run ", Describe(key)));
  }
  if (status != CUBLAS_STATUS_SUCCESS) return LtError("cublasLtMatmul", status);
  return absl::OkStatus();
}

}  // namespace rami::kernels
