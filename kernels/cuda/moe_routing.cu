// DeepSeek MoE routing on the GPU (semantics in kernels/moe_routing.h; twin MoeRoutingCpu).
// One warp per token, kWarps tokens per block; each warp keeps the token's scores and choice
// values in shared memory (2 · num_experts floats). Parallel steps (sigmoid / exp, group scores,
// the arg-max of each top-k round) spread over the lanes; the steps whose float rounding
// depends on order (the softmax denominator, the sum of the picked weights) run on lane 0 in
// the CPU's order, so only expf's last bits can differ. Top-k is k rounds of a warp arg-max
// with ties to the lower index — the CPU's partial_sort order.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/moe.h"

namespace rami::kernels {
namespace {

constexpr int kWarps = 4;

// Warp arg-max: the largest value, ties (and -inf for lanes with nothing) to the lower index.
// Every lane gets the result.
__device__ __forceinline__ void WarpArgMax(float& value, int& index) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float v = __shfl_xor_sync(0xffffffffu, value, offset);
    const int i = __shfl_xor_sync(0xffffffffu, index, offset);
    if (v > value || (v == value && i < index)) {
      value = v;
      index = i;
    }
  }
}

__global__ void __launch_bounds__(kWarps * 32) MoeRoutingKernel(MoeRoutingParams p) {
  extern __shared__ float smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = blockIdx.x * kWarps + warp;
  if (t >= p.num_tokens) return;  // whole warps leave: no block-wide barrier below
  const int e = p.num_experts;
  float* scores = smem + warp * 2 * e;
  float* choice = scores + e;
  const float* logits = p.logits + static_cast<int64_t>(t) * e;

  if (p.routing == MoeRouting::kSigmoidNoauxTc) {
    for (int i = lane; i < e; i += 32) scores[i] = 1.0f / (1.0f + expf(-logits[i]));
  } else {
    float big = -INFINITY;
    for (int i = lane; i < e; i += 32) big = fmaxf(big, logits[i]);
    big = cuda_detail::WarpMax(big);
    for (int i = lane; i < e; i += 32) scores[i] = expf(logits[i] - big);
    __syncwarp();
    if (lane == 0) {  // the CPU's sequential float sum
      float sum = 0.0f;
      for (int i = 0; i < e; ++i) sum += scores[i];
      smem[kWarps * 2 * e + warp] = sum;
    }
    __syncwarp();
    const float sum = smem[kWarps * 2 * e + warp];
    for (int i = lane; i < e; i += 32) scores[i] /= sum;
  }
  for (int i = lane; i < e; i += 32) {
    choice[i] = p.correction_bias != nullptr ? scores[i] + p.correction_bias[i] : scores[i];
  }
  __syncwarp();

  if (p.routing != MoeRouting::kSoftmaxGreedy) {
    // Lane g scores group g: its max (softmax) or the sum of its two largest values (sigmoid).
    const int group_size = e / p.num_groups;
    float group_score = -INFINITY;
    if (lane < p.num_groups) {
      const float* first = choice + lane * group_size;
      if (p.routing == MoeRouting::kSoftmaxGroupLimited) {
        for (int i = 0; i < group_size; ++i) group_score = fmaxf(group_score, first[i]);
      } else {
        float best = -INFINITY, second = -INFINITY;
        for (int i = 0; i < group_size; ++i) {
          if (first[i] > best) {
            second = best;
            best = first[i];
          } else if (first[i] > second) {
            second = first[i];
          }
        }
        group_score = best + second;
      }
    }
    uint32_t keep = 0;
    float remaining = group_score;
    for (int round = 0; round < p.topk_groups; ++round) {
      float value = remaining;
      int index = lane < p.num_groups ? lane : 32;
      WarpArgMax(value, index);
      if (index < 32) keep |= 1u << index;  // always: finite scores outrank the idle lanes
      if (lane == index) remaining = -INFINITY;
    }
    // Masked experts get 0, not -inf (transformers' masked_fill(…, 0.0)).
    for (int i = lane; i < e; i += 32) {
      if (((keep >> (i / group_size)) & 1u) == 0) choice[i] = 0.0f;
    }
    __syncwarp();
  }

  int32_t* ids = p.expert_ids + static_cast<int64_t>(t) * p.top_k;
  float* weights = p.weights + static_cast<int64_t>(t) * p.top_k;
  float sum = 0.0f;  // lane 0's, in pick order as the CPU
  for (int j = 0; j < p.top_k; ++j) {
    // Each lane scans its experts in ascending order with a strict '>', so its candidate is
    // its lowest-index maximum; taken experts hold -inf and are never candidates.
    float value = -INFINITY;
    int index = 0x7fffffff;
    for (int i = lane; i < e; i += 32) {
      if (choice[i] > value) {
        value = choice[i];
        index = i;
      }
    }
    WarpArgMax(value, index);
    __syncwarp();  // every lane has read choice before the winner is struck out
    if (lane == 0) {
      // Softmax routing weighs by the (masked) choice value, sigmoid by the raw score.
      const float w = p.routing == MoeRouting::kSigmoidNoauxTc ? scores[index] : value;
      ids[j] = index;
      weights[j] = w;
      sum += w;
      choice[index] = -INFINITY;
    }
    __syncwarp();
  }
  if (lane == 0) {
    for (int j = 0; j < p.top_k; ++j) {
      float w = weights[j];
      if (p.norm_topk_prob) w /= sum + 1e-20f;
      weights[j] = w * p.routed_scaling_factor;
    }
  }
}

}  // namespace

cudaError_t MoeRoutingCuda(const MoeRoutingParams& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  const int e = p.num_experts;
  if (p.num_tokens < 0 || e <= 0 || e > kMoeMaxExperts || p.top_k <= 0 || p.top_k > e ||
      p.num_groups <= 0 || p.num_groups > 32 || e % p.num_groups != 0 || p.topk_groups <= 0 ||
      p.topk_groups > p.num_groups ||
      (p.routing == MoeRouting::kSigmoidNoauxTc && e / p.num_groups < 2) || p.logits == nullptr ||
      p.expert_ids == nullptr || p.weights == nullptr) {
    return cudaErrorInvalidValue;
  }
  const size_t smem = sizeof(float) * (static_cast<size_t>(kWarps) * 2 * e + kWarps);  // ≤ 32 KiB
  const unsigned blocks = static_cast<unsigned>((p.num_tokens + kWarps - 1) / kWarps);
  MoeRoutingKernel<<<blocks, kWarps * 32, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace rami::kernels
