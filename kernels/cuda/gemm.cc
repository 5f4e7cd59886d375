// CublasLtGemm: row-major y = x · Wᵀ mapped onto cuBLASLt's column-major GEMM, with the
// heuristic's choice cached per shape and one workspace reused by every call.
#include "kernels/cuda/gemm.h"

#include <cublasLt.h>

#include <cstdint>
#include <map>
#include <tuple>
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

// The largest power of two (≤ 16, cuBLASLt's widest vector access) dividing the address.
uint32_t Alignment(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 16;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
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

}  // namespace

// (dtype, m, n, k, alignment of w, x, y): what the descriptors and the heuristic depend on.
using PlanKey = std::tuple<int, int, int, int, uint32_t, uint32_t, uint32_t>;

// The descriptors of one shape and the algorithm the heuristic picked for it.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t w_layout = nullptr;  // A: W as column-major [k, n], ld k, transposed
  cublasLtMatrixLayout_t x_layout = nullptr;  // B: x as column-major [k, m], ld k
  cublasLtMatrixLayout_t y_layout = nullptr;  // C = D: y as column-major [n, m], ld n
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
  // bf16 tensor-core kernel supports.
  absl::Status MakePlan(const PlanKey& key, Plan& plan) {
    const auto [dtype_int, m, n, k, align_w, align_x, align_y] = key;
    const cudaDataType_t type = CudaType(static_cast<GemmDtype>(dtype_int));
    // fp32 accumulation for both modes; CUBLAS_COMPUTE_32F is true fp32 (no TF32 rounding).
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t transpose = CUBLAS_OP_T, none = CUBLAS_OP_N;
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA,
                                                           &transpose, sizeof(transpose)));
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB,
                                                           &none, sizeof(none)));
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan.w_layout, type, k, n, k));
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan.x_layout, type, k, m, k));
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&plan.y_layout, type, n, m, n));

    cublasLtMatmulPreference_t preference = nullptr;
    RAMI_LT_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&preference));
    const uint64_t max_workspace = workspace_bytes;
    cublasStatus_t status =
        cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &max_workspace, sizeof(max_workspace));
    // The pointers' real alignments, so the algorithm never assumes more than we give it.
    const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_w},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_x},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_y},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_y}};
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
    const std::string shape =
        absl::StrCat(DtypeName(static_cast<GemmDtype>(dtype_int)), " m=", m, " n=", n, " k=", k,
                     " (alignment w/x/y ", align_w, "/", align_x, "/", align_y, " bytes)");
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
  if (p.m == 0) return absl::OkStatus();
  if (p.x == nullptr || p.w == nullptr || p.y == nullptr) {
    return absl::InvalidArgumentError("CublasLtGemm: null x, w or y");
  }
  const PlanKey key{
      static_cast<int>(p.dtype), p.m, p.n, p.k, Alignment(p.w), Alignment(p.x), Alignment(p.y)};
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
    return absl::UnimplementedError(absl::StrCat("cuBLASLt cannot run ", DtypeName(p.dtype),
                                                 " m=", p.m, " n=", p.n, " k=", p.k));
  }
  if (status != CUBLAS_STATUS_SUCCESS) return LtError("cublasLtMatmul", status);
  return absl::OkStatus();
}

}  // namespace rami::kernels
