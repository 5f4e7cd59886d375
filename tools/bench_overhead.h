// `rami-bench overhead`: what the processes cost. The same jobs — one prompt of token ids, n
// branches of max_tokens, greedy or sampled — run alternately through `rami-generate` (the
// engine in one process, no RPC) and through a running coordinator + worker (`--server`, the
// same checkpoint), `runs` times each; the report gives each configuration's tokens per second
// both ways and the ratio system / generate (median, min and max over the runs). Both sides
// must use the same BLAS threads (OPENBLAS_NUM_THREADS in the environment of both).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace rami::bench {

struct OverheadOptions {
  std::string server;
  std::string api_key;
  std::string model_dir;  // the checkpoint the workers serve, for rami-generate
  std::string generate;   // the rami-generate binary
  std::vector<int32_t> prompt;
  std::vector<int> n = {1, 16};
  std::vector<float> temperatures = {0.0f, 1.0f};
  int max_tokens = 128;
  int runs = 5;
};

struct OverheadRow {
  int n = 1;
  float temperature = 0;
  std::vector<double> generate_tps;  // per run
  std::vector<double> system_tps;
  std::vector<double> ratio;  // system / generate, per run
};

absl::StatusOr<std::vector<OverheadRow>> RunOverhead(const OverheadOptions& options);
nlohmann::json OverheadJson(const OverheadOptions& options, const std::vector<OverheadRow>& rows);
std::string OverheadText(const OverheadOptions& options, const std::vector<OverheadRow>& rows);

}  // namespace rami::bench
