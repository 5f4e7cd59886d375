// `rami-bench sampling`: what the CPU sampler (kernels::SampleCpu, kernels/sampling.h) costs
// per row, for each vocabulary size, logits shape and sampling configuration. Every call
// samples `rows` distinct logits rows, one token each, no top-n log-probs; the figures are the
// mean wall time and thread CPU time per row over `iters` calls (each call draws new uniforms:
// token index = call). A hash of every chosen token is reported beside it, so two builds can be
// checked to choose the same tokens on the same seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace rami::bench {

struct SamplingBenchOptions {
  std::vector<int> vocabs = {151936, 32000};  // Qwen3, Llama-2
  int rows = 64;                              // rows per SampleCpu call
  int iters = 5;                              // timed calls per measurement, after one warm-up
  uint32_t seed = 1;                          // logits and sampling seeds
  std::vector<std::string> configs;           // names of the configurations to run; empty: all
};

struct SamplingBenchRow {
  int vocab = 0;
  std::string logits;         // "peaked" or "flat" (RunSamplingBench says how they are drawn)
  std::string config;         // "greedy", "t1", "qwen3", "top_p", "min_p"
  std::string knobs;          // the configuration's parameters, e.g. "T=0.6 k=20 p=0.95"
  double us_per_row = 0;      // wall time
  double cpu_us_per_row = 0;  // this thread's CPU time (steadier on a shared machine)
  double top_mass = 0;        // mean softmax mass of each row's top token at temperature 1
  uint64_t tokens_hash = 0;   // FNV-1a of the chosen tokens of every timed call, in order
};

// Logits rows: "peaked": N(0, 3²) logits plus one random token raised so that it holds a mass
// drawn uniformly from [0.3, 0.9] at temperature 1 (an LLM's confident step with a long
// tail); "flat": N(0, 1) logits (no token above ~1e-4 of the mass at vocab 151936).
// Configurations: greedy (T=0); t1 (T=1, no filter); qwen3 (Qwen3's defaults: T=0.6, top_k 20,
// top_p 0.95); top_p (T=1, top_p 0.95 alone); min_p (T=1, min_p 0.05 alone). An error when
// options.configs names another.
absl::StatusOr<std::vector<SamplingBenchRow>> RunSamplingBench(const SamplingBenchOptions& options);

// The rows as a table (one line per measurement) and as JSON.
std::string SamplingBenchText(const SamplingBenchOptions& options,
                              const std::vector<SamplingBenchRow>& rows);
nlohmann::json SamplingBenchJson(const SamplingBenchOptions& options,
                                 const std::vector<SamplingBenchRow>& rows);

}  // namespace rami::bench
