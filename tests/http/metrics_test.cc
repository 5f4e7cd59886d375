// Metrics: counters and histograms as recorded, gauges from the snapshot, in the Prometheus
// text format (promtool checks a live /metrics in tests/integration/openai_api_test.py).
#include "coordinator/metrics/metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rami::metrics {
namespace {

using ::testing::HasSubstr;

TEST(Metrics, RendersWhatWasRecorded) {
  Metrics m;
  m.RequestEnded(Outcome::kFinished);
  m.RequestEnded(Outcome::kFinished);
  m.RequestEnded(Outcome::kRejected);
  m.GeneratedTokens(7);
  m.PromptTokens(3);
  m.TimeToFirstToken(0.003);
  m.TimeToFirstToken(100);
  m.JobCompression(3.2);
  Snapshot s;
  s.jobs_queued = 2;
  s.steps = 11;
  s.groups.push_back({.group = "a:1,b:2",
                      .state = "serving",
                      .pages_total = 100,
                      .pages_free = 60,
                      .eviction_rate = 0.75});
  s.groups.push_back({.group = "c:3", .state = "failed"});
  const std::string text = m.Render(s);
  EXPECT_THAT(text, HasSubstr("# TYPE rami_requests_total counter\n"));
  EXPECT_THAT(text, HasSubstr("rami_requests_total{outcome=\"finished\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("rami_requests_total{outcome=\"rejected\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("rami_generated_tokens_total 7\n"));
  EXPECT_THAT(text, HasSubstr("rami_prompt_tokens_total 3\n"));
  EXPECT_THAT(text, HasSubstr("rami_steps_total 11\n"));
  EXPECT_THAT(text, HasSubstr("rami_queue_depth 2\n"));
  EXPECT_THAT(text, HasSubstr("rami_worker_groups{state=\"serving\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("rami_worker_groups{state=\"failed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("rami_kv_pages{group=\"a:1,b:2\",kind=\"used\"} 40\n"));
  EXPECT_THAT(text, HasSubstr("rami_kv_eviction_rate{group=\"a:1,b:2\"} 0.75\n"));
  // Cumulative buckets: 3 ms falls in le=0.005 and every bucket above; 100 s only from 120.
  EXPECT_THAT(text, HasSubstr("rami_time_to_first_token_seconds_bucket{le=\"0.0025\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("rami_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("rami_time_to_first_token_seconds_bucket{le=\"60\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("rami_time_to_first_token_seconds_bucket{le=\"120\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("rami_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("rami_time_to_first_token_seconds_count 2\n"));
  EXPECT_THAT(text, HasSubstr("rami_kv_compression_ratio_bucket{le=\"4\"} 1\n"));
}

}  // namespace
}  // namespace rami::metrics
