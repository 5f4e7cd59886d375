// CachePolicy: which KV entries a cache keeps. All three policies share one layout and one
// set of kernels (dms.md §4); they differ in the window W and in where flags come from.
//   dense  — no eviction: an infinite window, no flags.
//   dms    — W = dms_window_size; flags are the model's decisions (one-token shift).
//   window — StreamingLLM-style baseline for any model: the first `sinks` positions are kept
//            forever (flag 0), every later one is evicted once it is more than `recent` − 1
//            tokens old (W = recent − 1, flag 1).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/statusor.h"

namespace rami::kv {

enum class CachePolicyKind { kDense, kDms, kWindow };

struct CachePolicy {
  CachePolicyKind kind = CachePolicyKind::kDense;
  int32_t window = std::numeric_limits<int32_t>::max();  // W
  int32_t sinks = 0;                                     // window policy only

  static CachePolicy Dense() { return {}; }
  static CachePolicy Dms(int32_t window) { return {CachePolicyKind::kDms, window, 0}; }
  static CachePolicy Window(int32_t sinks, int32_t recent) {
    return {CachePolicyKind::kWindow, recent - 1, sinks};
  }
  // Parses "dense", "dms" (window from the checkpoint: `dms_window`), "window:S:R".
  static absl::StatusOr<CachePolicy> Parse(const std::string& text, int32_t dms_window);

  bool evicts() const { return kind != CachePolicyKind::kDense; }
  // Flags decided by position alone (window policy).
  bool flags_by_position() const { return kind == CachePolicyKind::kWindow; }
  uint8_t PositionFlag(int64_t position) const { return position >= sinks ? 1 : 0; }
  absl::Status Validate() const;
  std::string ToString() const;
};

}  // namespace rami::kv
