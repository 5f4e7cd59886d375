// Entry points of the CUDA kernels. Each takes a params struct with device pointers and a
// stream and returns the launch status; shapes are validated by the caller before the launch
// (shapes are validated at the op boundary). Ops whose CPU twin params fit (fp32 RMSNorm,
// log-softmax + top-n, adapter logit decisions, the per-layer decision share, sampling, the
// page-table scatter) take those; the others take the typed
// device params of the headers below (bf16 or fp32 elements, fp32 arithmetic).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/dms_decision.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/kv_update.h"
#include "kernels/cuda/logits_gather.h"
#include "kernels/cuda/mla_attention.h"
#include "kernels/cuda/moe.h"
#include "kernels/cuda/qkv_prep.h"
#include "kernels/cuda/sampling.h"
#include "kernels/log_softmax_topn.h"
#include "kernels/rmsnorm.h"
#include "kernels/table_scatter.h"

namespace rami::kernels {

cudaError_t RmsNormCuda(const RmsNormParams& p, cudaStream_t stream);
cudaError_t LogSoftmaxTopNCuda(const LogSoftmaxTopNParams& p, cudaStream_t stream);
// The page tables' per-step writes (device pointers in the segments).
cudaError_t TableScatterCuda(const TableScatterParams& p, cudaStream_t stream);

}  // namespace rami::kernels
