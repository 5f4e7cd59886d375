// kv-capacity: how many sequences of a given length fit a KV budget under the dense, dms and
// window policies, measured by running the real KvCache bookkeeping in accounting-only mode
// (no KV storage) with synthetic eviction decisions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rami {

struct KvCapacityOptions {
  int num_layers = 36;  // Qwen3-8B
  int num_kv_heads = 8;
  int head_dim = 128;
  // MLA: one K-only row per token and layer (num_kv_heads 1, head_dim kv_lora + rope), no V.
  bool k_only = false;
  int bytes_per_element = 2;  // bf16
  double budget_gib = 119.0;
  int64_t seq_len = 32768;
  double eviction_rate = 7.0 / 8.0;
  int dms_window = 512;
  int window_sinks = 4;
  int window_recent = 0;  // 0: seq_len / 8, the same budget as 8× compression
  int chunk = 256;        // tokens per simulated step (chunking does not change results)
  std::vector<int> page_sizes = {16, 64};
  uint32_t seed = 1;
  absl::Status Validate() const;
  // Named model shapes: "qwen3-8b" (the defaults), "deepseek-v3" (MLA: 61 layers, one
  // 512 + 64 latent row), "llama3-405b" (126 layers × 8 KV heads × 128: a dense-attention
  // model of DeepSeek-V3's size). InvalidArgument for another name.
  absl::Status ApplyShape(const std::string& shape);
};

struct KvCapacityRow {
  std::string policy;
  int page_size = 0;
  double live_tokens = 0;        // mean over (layer, head) streams
  double live_bytes = 0;         // per sequence, all layers and heads
  double bytes_per_token = 0;    // live_bytes / seq_len
  int64_t pages = 0;             // physical pages of one sequence
  double page_bytes = 0;         // pages × page size in bytes
  int64_t sequences_fit = 0;     // floor(budget / page_bytes)
  double compression_ratio = 1;  // as the DMS reference defines it
  double eviction_rate = 0;      // measured mean α
};

absl::StatusOr<std::vector<KvCapacityRow>> RunKvCapacity(const KvCapacityOptions& options);

}  // namespace rami
