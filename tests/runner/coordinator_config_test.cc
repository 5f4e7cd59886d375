// CoordinatorConfig: a config main.cc would build from good flags passes; each bad flag is
// refused with its name and range; the runner's config is derived from it.
#include "coordinator/service/coordinator_config.h"

#include <functional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rami::coordinator {
namespace {

using ::testing::HasSubstr;

CoordinatorConfig Good() {
  CoordinatorConfig c;
  c.workers = "127.0.0.1:7001,127.0.0.1:7002";
  c.model_dir = "/models/qwen3";
  return c;
}

TEST(CoordinatorConfig, GoodFlagsPass) {
  EXPECT_TRUE(Good().Validate().ok()) << Good().Validate();
  CoordinatorConfig dns = Good();
  dns.workers.clear();
  dns.worker_discovery = "dns:rami-{pod}.rami";
  EXPECT_TRUE(dns.Validate().ok()) << dns.Validate();
}

TEST(CoordinatorConfig, EachBadFlagIsNamed) {
  struct Case {
    std::function<void(CoordinatorConfig&)> change;
    const char* message;
  };
  const Case cases[] = {
      {[](CoordinatorConfig& c) { c.worker_discovery = "file:/x"; }, "exactly one of --workers"},
      {[](CoordinatorConfig& c) { c.workers.clear(); }, "exactly one of --workers"},
      {[](CoordinatorConfig& c) { c.model_dir.clear(); }, "--model_dir is required"},
      {[](CoordinatorConfig& c) { c.workers = "nohost"; }, "--workers"},
      {[](CoordinatorConfig& c) { c.lease_seconds = 0.5; }, "--lease_seconds: expected 1…3600"},
      {[](CoordinatorConfig& c) { c.discovery_interval_seconds = 0; }, "--discovery_interval"},
      {[](CoordinatorConfig& c) { c.startup_timeout_seconds = -1; }, "--startup_timeout"},
      {[](CoordinatorConfig& c) { c.drain_timeout_seconds = NAN; }, "--drain_timeout"},
      {[](CoordinatorConfig& c) { c.collective_timeout_seconds = 0; }, "--collective_timeout"},
      {[](CoordinatorConfig& c) { c.page_size = 0; }, "--page_size: expected 1…1024"},
      {[](CoordinatorConfig& c) { c.worker_tls.cert_file = "/x.pem"; },
       "--worker_tls_ca_file: required with --worker_tls_cert_file"},
      {[](CoordinatorConfig& c) {
         c.worker_tls = {"/no/c.pem", "/no/c.key", "/no/ca.pem"};
       },
       "--worker_tls_cert_file/--worker_tls_key_file: cannot read /no/c.pem"},
      {[](CoordinatorConfig& c) {
         c.public_tls = {"/no/c.pem", "/no/c.key", ""};
       },
       "--tls_cert_file/--tls_key_file: cannot read /no/c.pem"},
      {[](CoordinatorConfig& c) { c.require_tls = true; }, "--require_tls: the public ports"},
      {[](CoordinatorConfig& c) { c.finished_job_ttl_seconds = -1; }, "--finished_job_ttl"},
      {[](CoordinatorConfig& c) { c.step_timeout_floor_seconds = 0; }, "--step_timeout_floor"},
      {[](CoordinatorConfig& c) { c.step_timeout_factor = 0.5; }, "--step_timeout_factor"},
      {[](CoordinatorConfig& c) { c.kv_cache_bytes = 0; }, "--kv_cache_bytes"},
      {[](CoordinatorConfig& c) { c.gpu_memory_utilization = 1.5; }, "--gpu_memory_utilization"},
      {[](CoordinatorConfig& c) { c.device = "tpu"; }, "--device: expected cpu, cuda"},
      {[](CoordinatorConfig& c) { c.dtype = "fp8"; }, "--dtype: expected fp32 or bf16"},
      {[](CoordinatorConfig& c) { c.dtype = "bf16"; }, "--dtype: bf16 needs a CUDA device"},
      {[](CoordinatorConfig& c) { c.limits.max_n = 0; }, "--max_n: must be in [1, "},
      {[](CoordinatorConfig& c) { c.limits.queue_limit = 0; }, "--queue_limit"},
      {[](CoordinatorConfig& c) { c.scheduler.max_step_tokens = 0; }, "--max_step_tokens: must"},
      {[](CoordinatorConfig& c) { c.scheduler.max_prefill_chunk = -3; }, "--max_prefill_chunk"},
      {[](CoordinatorConfig& c) {
         c.workers.clear();
         c.worker_discovery = "dns:x";
         c.dns.tp = 0;
       },
       "--tp: expected 1…64"},
  };
  for (const Case& test : cases) {
    CoordinatorConfig c = Good();
    test.change(c);
    const absl::Status s = c.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << test.message;
    EXPECT_THAT(s.message(), HasSubstr(test.message));
  }
}

TEST(CoordinatorConfig, TheRunnerConfigFollowsTheFlags) {
  CoordinatorConfig c = Good();
  c.device = "cuda:1";
  c.dtype = "fp32";
  c.scheduler.max_step_tokens = 64;
  c.scheduler.max_step_sequences = 256;
  c.limits.queue_limit = 9;
  c.lease_seconds = 20;
  c.lookahead = true;
  ASSERT_TRUE(c.Validate().ok()) << c.Validate();
  RunnerConfig r = c.Runner("host-a");
  EXPECT_EQ(r.coordinator_id, "host-a");  // the host name unless --coordinator_id says
  EXPECT_EQ(r.queue_limit, 9);
  EXPECT_TRUE(r.lookahead);
  EXPECT_EQ(r.load.model_dir, "/models/qwen3");
  EXPECT_TRUE(r.load.device.is_cuda());
  EXPECT_EQ(r.load.device.index, 1);
  EXPECT_EQ(r.load.dtype, ComputeDType::kFp32);
  EXPECT_EQ(r.load.max_step_tokens, 64);
  EXPECT_EQ(r.load.max_step_sequences, 64);  // never more sequences than tokens
  EXPECT_DOUBLE_EQ(r.load.lease_seconds, 20);
  c.coordinator_id = "coord-1";
  EXPECT_EQ(c.Runner("host-a").coordinator_id, "coord-1");
  absl::StatusOr<std::unique_ptr<WorkerDiscovery>> discovery = c.Discovery();
  ASSERT_TRUE(discovery.ok());
  EXPECT_TRUE((*discovery)->fixed());
  EXPECT_EQ((*(*discovery)->Groups()).size(), 1u);
}

}  // namespace
}  // namespace rami::coordinator
