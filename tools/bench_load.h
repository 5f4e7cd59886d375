// `rami-bench load`: an open-loop load generator against a running coordinator. Jobs arrive
// as a Poisson process (exponential gaps at `rate` per second) until `max_jobs` have been sent
// or `duration` has passed; each job draws its branch count and length from the mixes and is
// aborted, with probability `abort_fraction`, at a random time before it would end. Every job
// ends in exactly one bucket of the report: completed, aborted (as asked), an error by gRPC
// code, hung (no terminal event within `job_timeout`) or lost (its stream closed with neither
// a result nor an error). A correct server leaves hung and lost at zero.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace rami::bench {

struct LoadOptions {
  std::string server;                          // the coordinator's gRPC address (host:port)
  std::string api_key;                         // sent as `authorization: Bearer ...` when set
  double rate = 4.0;                           // mean arrivals per second
  int max_jobs = 100;                          // arrivals stop after this many jobs ...
  absl::Duration duration = absl::Minutes(1);  // ... or after this long, whichever is first
  std::vector<int> n_mix = {1, 4, 8, 16};      // branches per job, drawn uniformly
  std::vector<int> max_tokens_mix = {8, 32, 64};
  double temperature = 1.0;
  double abort_fraction = 0.1;  // share of jobs aborted (Abort RPC) at a random time
  absl::Duration abort_within = absl::Milliseconds(500);  // the abort lands in [0, this)
  absl::Duration job_timeout = absl::Minutes(2);          // later than this: hung
  uint64_t seed = 1;
  // Called about every `progress_every` (not at all when zero) with a one-line snapshot.
  absl::Duration progress_every = absl::ZeroDuration();
  std::function<void(const std::string&)> progress;
};

struct LoadReport {
  int64_t submitted = 0;
  int64_t completed = 0;  // a Result arrived (an aborted job that finished first counts here)
  int64_t aborted = 0;    // aborted as asked: the job ended CANCELLED after our Abort
  int64_t hung = 0;       // no terminal event within job_timeout
  int64_t lost = 0;       // the stream ended OK with neither a Result nor an error
  std::map<std::string, int64_t> errors;  // gRPC code name → jobs that ended with it
  int64_t tokens = 0;                     // generated tokens seen in deltas
  std::vector<double> ttft_ms;            // completed jobs: send → first token
  std::vector<double> e2e_ms;             // completed jobs: send → Result
  double seconds = 0;                     // first send → last job's end
};

// Runs the load; an error only for bad options (every job's outcome is in the report).
absl::StatusOr<LoadReport> RunLoad(const LoadOptions& options);

// The report as JSON (counts, errors by code, p50/p99 TTFT and end-to-end in ms, tokens/s).
nlohmann::json LoadReportJson(const LoadReport& report);
// The same as a few lines of text.
std::string LoadReportText(const LoadReport& report);

// The p-th percentile (0..100, nearest rank) of `values`; 0 when empty.
double Percentile(std::vector<double> values, double p);

}  // namespace rami::bench
