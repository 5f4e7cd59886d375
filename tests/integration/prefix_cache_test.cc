// Prefix caching end to end on loopback: rami-coordinator + 1 or 2 rami-worker processes (CPU,
// Gloo), for every cache policy — dense, window, DMS with borrowed decisions, DMS with the
// adapter. A job whose prompt starts with a cached prefix (a snapshot point, or a whole earlier
// prompt) must give exactly what a cold run gives: the same tokens, the same log-probs and the
// same live KV (Usage's compression ratio and peak bytes).
//
// The cold reference runs with the cache on under a fresh cache_salt (a scope with no entries),
// so its prompt is cut into the same chunks and the comparison is exact; a run that skips the
// cache (other chunks) is compared within the self-consistency tolerance.
#include <cmath>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "rami/v1/inference.grpc.pb.h"
#include "tests/integration/inference_client.h"
#include "tests/integration/worker_process.h"

namespace rami::testing {
namespace {

namespace v1 = rami::v1;

struct Setup {
  std::string model;   // under tests/golden/models
  std::string policy;  // --cache_policy
  int tp = 1;
};

std::string Name(const ::testing::TestParamInfo<Setup>& info) {
  std::string policy = info.param.policy;
  for (char& c : policy) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return absl::StrCat(info.param.model, "_", policy, "_tp", info.param.tp);
}

struct Deployment {
  Deployment(const Setup& s, const std::vector<std::string>& extra = {}) {
    std::string workers_flag = "--workers=";
    for (int r = 0; r < s.tp; ++r) {
      workers.push_back(std::make_unique<WorkerProcess>());
      if (!workers.back()->ok()) return;
      absl::StrAppend(&workers_flag, r > 0 ? "," : "", workers.back()->address());
    }
    std::vector<std::string> flags = {
        workers_flag,
        absl::StrCat("--model_dir=", RAMI_SOURCE_DIR, "/tests/golden/models/", s.model),
        "--cache_policy=" + s.policy,
        "--page_size=4",
        "--kv_cache_bytes=8388608",
        "--max_prefill_chunk=8",
        "--collective_timeout=10",
        "--worker_auth_token_file=" + TestAuthTokenFile()};
    flags.insert(flags.end(), extra.begin(), extra.end());
    coordinator = std::make_unique<WorkerProcess>(RAMI_COORDINATOR_BINARY, flags, 60);
    if (!coordinator->ok()) return;
    stub = v1::Inference::NewStub(
        grpc::CreateChannel(coordinator->address(), grpc::InsecureChannelCredentials()));
  }
  bool ok() const { return stub != nullptr; }
  v1::ServerInfo Info() {
    grpc::ClientContext ctx;
    v1::ServerInfo info;
    EXPECT_TRUE(stub->GetServerInfo(&ctx, v1::GetServerInfoRequest(), &info).ok());
    return info;
  }

  std::vector<std::unique_ptr<WorkerProcess>> workers;
  std::unique_ptr<WorkerProcess> coordinator;
  std::unique_ptr<v1::Inference::Stub> stub;
};

std::vector<int32_t> Tokens(int32_t first, int count) {
  std::vector<int32_t> v;
  for (int i = 0; i < count; ++i) v.push_back((first + 37 * i) % 250 + 3);
  return v;
}

// Three branches (seeds 7 + i), two log-probs per token, the cache's fields as given.
v1::GenerateRequest Job(const std::vector<int32_t>& prompt, float temperature, int max_tokens,
                        const std::string& salt, std::vector<int32_t> boundaries = {6, 10, 16}) {
  v1::GenerateRequest r;
  for (int32_t id : prompt) r.mutable_token_ids()->add_ids(id);
  r.set_n(3);
  r.mutable_sampling()->set_temperature(temperature);
  r.mutable_sampling()->set_seed(7);
  r.mutable_stopping()->set_max_tokens(max_tokens);
  r.mutable_stopping()->set_ignore_eos(true);
  r.set_logprobs(2);
  r.set_stream_deltas(true);
  r.set_cache_salt(salt);
  for (int32_t b : boundaries) r.add_cache_boundaries(b);
  return r;
}

struct Branches {
  std::map<int, std::vector<int32_t>> tokens;
  std::map<int, std::vector<float>> logprobs;
  v1::Usage usage;
};

Branches RunBranches(v1::Inference::Stub& stub, const v1::GenerateRequest& r) {
  const JobOutput out = RunJob(stub, r);
  Branches b;
  EXPECT_TRUE(out.result.has_value()) << (out.error ? out.error->message() : "no result");
  if (!out.result.has_value()) return b;
  b.tokens = out.delta_ids;
  for (const v1::GenerateEvent& e : out.events) {
    if (!e.has_delta()) continue;
    for (const v1::TokenLogprobs& t : e.delta().logprobs()) {
      b.logprobs[e.delta().branch()].push_back(t.logprob());
    }
  }
  b.usage = out.result->usage();
  return b;
}

// Exactly the same computation: tokens, log-probs and live KV.
void ExpectSame(const Branches& warm, const Branches& cold, const std::string& what) {
  EXPECT_EQ(warm.tokens, cold.tokens) << what;
  EXPECT_EQ(warm.logprobs, cold.logprobs) << what;
  EXPECT_EQ(warm.usage.compression_ratio(), cold.usage.compression_ratio()) << what;
  EXPECT_EQ(warm.usage.peak_kv_bytes(), cold.usage.peak_kv_bytes()) << what;
}

class PrefixCacheE2e : public ::testing::TestWithParam<Setup> {};

TEST_P(PrefixCacheE2e, CachedPrefixesGiveExactlyTheColdRunsOutput) {
  Deployment d(GetParam());
  ASSERT_TRUE(d.ok());
  // A 20-token shared part with boundaries at 6 (inside a page, shorter than the DMS window
  // W + 1 = 9), 10 (inside a page) and 16 (a chunk boundary of --max_prefill_chunk=8), then a
  // question of its own.
  const std::vector<int32_t> shared = Tokens(1, 20);
  auto with = [&](int32_t question) {
    std::vector<int32_t> p = shared;
    for (int32_t t : Tokens(question, 7)) p.push_back(t);
    return p;
  };
  for (float temperature : {0.0f, 1.0f}) {
    const std::string scope = absl::StrCat("t", temperature);
    const Branches a = RunBranches(*d.stub, Job(with(100), temperature, 12, scope));
    EXPECT_EQ(a.usage.cached_prompt_tokens(), 0);
    // Another question after the same 20 tokens: copied from the snapshot at 16.
    const Branches b = RunBranches(*d.stub, Job(with(200), temperature, 12, scope));
    EXPECT_EQ(b.usage.cached_prompt_tokens(), 16);
    // The first prompt again: a full hit on its kept root, nothing prefilled.
    const Branches a2 = RunBranches(*d.stub, Job(with(100), temperature, 12, scope));
    EXPECT_EQ(a2.usage.cached_prompt_tokens(), 27);
    // A prompt that leaves the shared part at 12: the snapshot at 10.
    std::vector<int32_t> early(shared.begin(), shared.begin() + 12);
    for (int32_t t : Tokens(300, 5)) early.push_back(t);
    const Branches c = RunBranches(*d.stub, Job(early, temperature, 12, scope));
    EXPECT_EQ(c.usage.cached_prompt_tokens(), 10);

    // Cold references: the same chunks, in a scope of their own.
    const Branches a_cold = RunBranches(*d.stub, Job(with(100), temperature, 12, scope + "cold a"));
    const Branches b_cold = RunBranches(*d.stub, Job(with(200), temperature, 12, scope + "cold b"));
    const Branches c_cold = RunBranches(*d.stub, Job(early, temperature, 12, scope + "cold c"));
    EXPECT_EQ(b_cold.usage.cached_prompt_tokens(), 0);
    ExpectSame(a, a_cold, "first job");
    ExpectSame(b, b_cold, "snapshot hit");
    ExpectSame(a2, a_cold, "full hit");
    ExpectSame(c, c_cold, "shorter snapshot hit");

    // Without the cache the prompt is chunked otherwise: within the self-consistency tolerance.
    v1::GenerateRequest skip = Job(with(200), temperature, 12, scope);
    skip.set_skip_prefix_cache(true);
    const Branches b_skip = RunBranches(*d.stub, skip);
    EXPECT_EQ(b_skip.usage.cached_prompt_tokens(), 0);
    if (temperature == 0.0f) {
      EXPECT_EQ(b_skip.tokens, b.tokens);
    }
    if (b_skip.tokens == b.tokens) {
      for (const auto& [branch, lps] : b.logprobs) {
        ASSERT_EQ(lps.size(), b_skip.logprobs.at(branch).size());
        for (size_t i = 0; i < lps.size(); ++i) {
          EXPECT_NEAR(lps[i], b_skip.logprobs.at(branch)[i], 1e-4) << branch << " " << i;
        }
      }
    }
  }
  const v1::ServerInfo info = d.Info();
  EXPECT_TRUE(info.prefix_cache().enabled());
  EXPECT_EQ(info.prefix_cache().hits(), 2 * 3);
  EXPECT_EQ(info.prefix_cache().cached_tokens(), 2 * (16 + 27 + 10));
  EXPECT_GT(info.prefix_cache().entries(), 0);
}

// The entry a running job was copied from is freed while the job still decodes: the cache's
// share is a sliver of the pool, so every entry goes at the plan after the one that made it
// (an entry is never freed by the plan that copies it). The job is untouched.
TEST_P(PrefixCacheE2e, AnEntryFreedWhileItsCopyRunsChangesNothing) {
  Deployment d(GetParam(), {"--prefix_cache_fraction=0.0001"});
  ASSERT_TRUE(d.ok());
  const std::vector<int32_t> shared = Tokens(5, 20);
  std::vector<int32_t> prompt = shared;
  for (int32_t t : Tokens(400, 6)) prompt.push_back(t);
  RunBranches(*d.stub, Job(shared, 0.0f, 2, "s"));  // its root is kept for `shared`
  const int64_t evicted_before = d.Info().prefix_cache().evictions();
  const Branches running = RunBranches(*d.stub, Job(prompt, 1.0f, 48, "s"));
  EXPECT_EQ(running.usage.cached_prompt_tokens(), 20);
  EXPECT_GT(d.Info().prefix_cache().evictions(), evicted_before);
  // The cold run's chunks end where the warm run's did (its copy started at 20).
  ExpectSame(running, RunBranches(*d.stub, Job(prompt, 1.0f, 48, "cold", {6, 10, 16, 20})),
             "copy of an evicted entry");
}

INSTANTIATE_TEST_SUITE_P(
    Policies, PrefixCacheE2e,
    ::testing::Values(Setup{"qwen3", "dense", 1}, Setup{"qwen3", "dense", 2},
                      Setup{"qwen3", "window:2:6", 1}, Setup{"qwen3", "window:2:6", 2},
                      Setup{"qwen3_dms", "dms", 1}, Setup{"qwen3_dms", "dms", 2},
                      Setup{"qwen3_dms_adapter", "dms", 1}, Setup{"qwen3_dms_adapter", "dms", 2}),
    Name);

}  // namespace
}  // namespace rami::testing
