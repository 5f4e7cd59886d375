// The golden files of tests/golden/models/<name>/ (make_golden.py, make_golden_deepseek.py):
// where a model's directory is, and its golden.json (schema: tests/golden/README.md) read into
// plain structs. Shared by the CPU golden test and the CUDA model test.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rami::testing {

// The DMS fields of a case (README.md, "golden.json additions"). The case's final sequence is
// its prompt followed by every greedy token; token t's decision α_t flags token t − 1.
struct GoldenDms {
  double eviction_rate = 0.0;                            // mean α_t over t = 1 .. len − 1
  std::vector<std::vector<int64_t>> live_after_prefill;  // [layer][kv_head]
  std::vector<std::vector<int64_t>> live_final;          // [layer][kv_head]
  std::vector<std::vector<std::vector<uint8_t>>> alpha;  // [layer][kv_head][t], 0/1
};

struct GoldenCase {
  std::vector<int32_t> prompt;
  std::vector<std::vector<float>> prefill_logits;  // [prompt position][vocab]
  std::vector<int32_t> greedy;                     // g0 … g(n−1)
  std::vector<std::vector<float>> decode_logits;   // [i][vocab]: logits at the position of g_i
  std::optional<GoldenDms> dms;                    // DMS checkpoints only
};

// RAMI_SOURCE_DIR/tests/golden/models/<name>: config.json, weights and golden.json.
std::string GoldenModelDir(const std::string& name);

// The cases of <name>'s golden.json; an error names the file and what did not parse.
absl::StatusOr<std::vector<GoldenCase>> LoadGoldenCases(const std::string& name);

}  // namespace rami::testing
