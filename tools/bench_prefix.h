// `rami-bench prefix`: the prefix cache against a running coordinator.
//
// Shared-prefix traffic: `questions` jobs, each one `prefix_tokens`-token shared part (marked
// with a cache boundary) plus a question of its own (`question_tokens` random tokens), n
// branches of max_tokens, `concurrency` jobs in flight. Run twice — with the cache skipped
// (GenerateRequest.skip_prefix_cache) and with it on (a fresh cache_salt, so it starts cold) —
// reporting the prompt tokens the workers prefilled (ServerInfo.prefill_tokens, before and
// after), the cached tokens the jobs report, and p50/p99 time to first token.
//
// Capacity: `fill` distinct prefixes of prefix_tokens (n 1, one token each) are cached one after
// another; the pages they hold are measured on the workers (the groups' free pages between
// fill/2 and fill entries, so what a job leaves for one step cancels out) and compared with the
// formula: streams · (ceil(live / page_size) + 1) pages, live = L for dense and
// W + 1 + (1 − α)·(L − W − 1) under DMS with the eviction rate α the workers measured.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace rami::bench {

struct PrefixBenchOptions {
  std::string server;
  std::string api_key;
  int prefix_tokens = 2048;
  int questions = 200;
  // Questions of the cache-off pass (-1: all): on a CPU a big model's cold prefills take
  // minutes each, so that pass may run on the first of them only (its TTFT is per job).
  int questions_without_cache = -1;
  int question_tokens = 24;
  int n = 8;
  int max_tokens = 8;
  int concurrency = 4;
  int fill = 8;  // prefixes cached for the capacity measurement (0: skip it)
  uint64_t seed = 1;
};

struct PrefixTrafficRow {
  std::string mode;  // "cache off" / "cache on"
  int64_t jobs = 0;
  int64_t failed = 0;
  int64_t prefill_tokens = 0;  // prompt tokens the workers prefilled
  int64_t cached_tokens = 0;   // Σ Usage.cached_prompt_tokens
  std::vector<double> ttft_ms;
  double seconds = 0;
};

struct PrefixCapacity {
  std::string policy;
  int64_t entries = 0;         // prefixes measured
  double pages_per_entry = 0;  // measured on the workers (tightest rank)
  double formula_pages = 0;    // the formula's, with the measured eviction rate
  double eviction_rate = 0;
  int64_t pool_pages = 0;    // the group's pool (tightest rank)
  int64_t fit_measured = 0;  // pool / measured pages per entry
  int64_t fit_formula = 0;   // pool / formula pages
  int64_t fit_dense = 0;     // pool / the dense formula (no eviction)
};

struct PrefixReport {
  std::string model;
  std::vector<PrefixTrafficRow> rows;
  PrefixCapacity capacity;
};

absl::StatusOr<PrefixReport> RunPrefixBench(const PrefixBenchOptions& options);
nlohmann::json PrefixReportJson(const PrefixBenchOptions& options, const PrefixReport& report);
std::string PrefixReportText(const PrefixBenchOptions& options, const PrefixReport& report);

}  // namespace rami::bench
