// Metrics: the coordinator's Prometheus series — counters and histograms that the runner and
// the front ends record into as things happen, and gauges read from a snapshot of the runner
// at scrape time — rendered in the Prometheus text exposition format (version 0.0.4) for
// GET /metrics. Names follow Prometheus conventions: the `rami_` prefix, `_total` counters,
// `_seconds` histograms; labels take a bounded set of values (outcomes, group states, one per
// worker group). Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/synchronization/mutex.h"

namespace rami::metrics {

// How a request ended, the `outcome` label of rami_requests_total.
enum class Outcome { kFinished, kFailed, kAborted, kRejected };

// Cumulative-bucket histogram (Prometheus' `le` buckets plus +Inf).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
    counts_.resize(bounds_.size() + 1);
  }
  void Observe(double value);
  // `name`_bucket{le=…}, `name`_sum and `name`_count lines (caller holds the lock).
  void Render(absl::string_view name, std::string* out) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last one is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// A worker group's gauges at scrape time.
struct GroupSnapshot {
  std::string group;  // its ranks, "h:p,h:p"
  std::string state;  // loading, serving, failed, leaving, gone
  int64_t pages_total = 0;
  int64_t pages_free = 0;
  double eviction_rate = 0;
  int64_t prefix_entries = 0;  // cached prompt prefixes it holds
  int64_t prefix_tokens = 0;
};

// The runner's state at scrape time.
struct Snapshot {
  int64_t jobs_queued = 0;  // accepted, not started
  int64_t jobs_running = 0;
  int64_t branches_running = 0;
  uint64_t steps = 0;
  int64_t preemptions = 0;
  int64_t relocated_branches = 0;
  // Prefix caching: jobs that found a cached prefix or none, the prompt tokens hits did not
  // prefill, and entries freed (the cap or memory pressure).
  int64_t prefix_hits = 0;
  int64_t prefix_misses = 0;
  int64_t prefix_cached_tokens = 0;
  int64_t prefix_evictions = 0;
  std::vector<GroupSnapshot> groups;
};

class Metrics {
 public:
  Metrics();

  void RequestEnded(Outcome outcome);
  void PromptTokens(int64_t tokens);
  void GeneratedTokens(int64_t tokens);
  void BranchFinished();
  void TimeToFirstToken(double seconds);
  void InterTokenLatency(double seconds);
  void EndToEnd(double seconds);
  void WorkerStep(double seconds);
  void JobCompression(double ratio);  // logical / live tokens of a finished job

  // Every series, the snapshot's gauges included.
  std::string Render(const Snapshot& snapshot);

 private:
  void RenderCounters(const Snapshot& s, std::string* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RenderGauges(const Snapshot& s, std::string* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::array<uint64_t, 4> requests_ ABSL_GUARDED_BY(mu_) = {};
  uint64_t prompt_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t generated_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t branches_finished_ ABSL_GUARDED_BY(mu_) = 0;
  Histogram ttft_ ABSL_GUARDED_BY(mu_);
  Histogram inter_token_ ABSL_GUARDED_BY(mu_);
  Histogram end_to_end_ ABSL_GUARDED_BY(mu_);
  Histogram worker_step_ ABSL_GUARDED_BY(mu_);
  Histogram compression_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rami::metrics
