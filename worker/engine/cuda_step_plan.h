// CudaStepPlan: a step's metadata as the CUDA forward pass reads it, built once on the host
// (host-only code: tested without a GPU) and packed into one buffer that is copied to the device
// once per step (plan once, run per layer).
//
// Differences from the CPU StepMetadata (worker/cpu/step_metadata.h):
//  * Token order: single-token chunks (decode tokens, the decode-attention kernel) first, then
//    the multi-token chunks (prefill tiles), each chunk's tokens consecutive. Logits rows keep
//    the caller's chunk order through `first_row`, so ForwardResult is the CPU backend's.
//  * Streams: persistent per sequence (DeviceKvTables::StreamBase), not per batch entry, so the
//    device page tables are updated by deltas instead of rebuilt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "worker/engine/forward_backend.h"
#include "worker/kv/device_kv_tables.h"
#include "worker/kv/kv_cache.h"

namespace rami::engine {

struct CudaStepPlan {
  int num_tokens = 0;
  int num_decode = 0;              // tokens [0, num_decode): one per single-token chunk
  std::vector<int32_t> tokens;     // [num_tokens] plan order
  std::vector<int32_t> positions;  // [num_tokens]
  // [num_layers, num_tokens]: stream of KV head 0 of the token's (sequence, layer).
  std::vector<int32_t> token_stream;
  // Multi-token chunks, in plan order (for kernels::PlanPrefillTiles): first token, length.
  std::vector<int32_t> prefill_first;
  std::vector<int32_t> prefill_length;
  std::vector<int32_t> logit_tokens;  // [rows] plan-order token of each logits row
  std::vector<int32_t> first_row;     // [num_chunks] caller order: first row of each chunk
  // Visible keys of the longest decode query (kept + window), for kernels::PlanDecodeSplits.
  int64_t max_decode_keys = 0;
  // Plan-order index of the caller's token i of chunk c is chunk_first[c] + i.
  std::vector<int32_t> chunk_first;  // [num_chunks] caller order
};

// Plans a step whose chunks were validated, whose pages are reserved and whose sequences were
// synced into `tables` after the reservation.
CudaStepPlan PlanCudaStep(absl::Span<const SequenceChunk> chunks, const kv::KvCache& cache,
                          const kv::DeviceKvTables& tables);

// CUDA graphs of decode steps (worker/cuda/decode_graphs.h) are captured per batch bucket:
// 1, 2, 4, then multiples of 8 up to max_batch. DecodeBucket(n, max) is the smallest bucket
// ≥ n, or 0 when n > max_batch (the step runs eagerly).
int DecodeBucket(int num_tokens, int max_batch);

// Pads a decode-only plan (num_decode == num_tokens) to `bucket` tokens: padding tokens have id
// 0, position 0 and stream −1 in every layer (the KV write skips them, decode attention gives
// them zeros) and one logits row each after the real rows, so the plan's arrays — and the
// packed layout — depend on the bucket alone. first_row and chunk_first are unchanged.
void PadDecodePlan(int bucket, CudaStepPlan* plan);

// The plan's device arrays in one buffer, each at a 16-byte aligned offset (bytes).
struct CudaStepLayout {
  size_t tokens = 0, positions = 0, token_stream = 0, logit_tokens = 0;
  size_t bytes = 0;  // total
};
CudaStepLayout LayoutOf(const CudaStepPlan& plan);
// Writes the arrays at their offsets into `dst` (LayoutOf(plan).bytes bytes, e.g. pinned).
void PackCudaStep(const CudaStepPlan& plan, const CudaStepLayout& layout, void* dst);

}  // namespace rami::engine
