// The worker process over real gRPC on loopback: rami-worker processes driven as
// tensor-parallel groups (CPU, Gloo). TP=2 equals TP=1 equals the golden greedy tokens;
// malformed plans fail their step and the worker keeps serving; a dead peer fails the other
// rank's step within the collective timeout; LoadShard's dtype is checked per device;
// Shutdown exits 0.
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/golden/golden_files.h"
#include "tests/integration/worker_group.h"
#include "tests/testing/safetensors_writer.h"

namespace rami::testing {
namespace {

namespace v1 = worker::v1;

constexpr int64_t kKvBytes = 8 << 20;

struct Golden {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> greedy;
};

Golden LoadGolden(const std::string& name) {
  std::ifstream in(GoldenModelDir(name) + "/golden.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  Golden g;
  for (const nlohmann::json& c : j.at("cases")) {
    g.prompts.push_back(c.at("prompt").get<std::vector<int32_t>>());
    g.greedy.push_back(c.at("greedy_tokens").get<std::vector<int32_t>>());
  }
  return g;
}

v1::SamplingParams Greedy(int logprobs = 3) {
  v1::SamplingParams s;
  s.set_logprobs(logprobs);
  return s;
}

// Prefills every prompt (one step), decodes `steps` more; per rank and sequence the sampled
// tokens and their log-probs.
struct GenerateRun {
  std::vector<std::vector<std::vector<int32_t>>> tokens;  // [rank][seq][i]
  std::vector<std::vector<std::vector<float>>> logprobs;  // [rank][seq][i]
};

GenerateRun Generate(WorkerGroup& group, const std::vector<std::vector<int32_t>>& prompts,
                     int steps) {
  GenerateRun run;
  run.tokens.assign(group.size(), std::vector<std::vector<int32_t>>(prompts.size()));
  run.logprobs.assign(group.size(), std::vector<std::vector<float>>(prompts.size()));
  v1::StepPlan plan;
  plan.set_step_id(1);
  for (size_t i = 0; i < prompts.size(); ++i) {
    v1::PrefillChunk* p = plan.add_prefills();
    p->set_seq_id(static_cast<int64_t>(i));
    p->mutable_token_ids()->Assign(prompts[i].begin(), prompts[i].end());
    p->set_create(true);
    p->set_sample(true);
    *p->mutable_sampling() = Greedy();
  }
  for (int s = 0; s <= steps; ++s) {
    const std::vector<v1::StepResult> results = group.Step(plan);
    for (int r = 0; r < group.size(); ++r) {
      EXPECT_EQ(results[r].error_code(), 0) << results[r].error_message();
      for (const v1::SampledToken& t : results[r].tokens()) {
        run.tokens[r][t.seq_id()].push_back(t.token_id());
        run.logprobs[r][t.seq_id()].push_back(t.logprob());
      }
    }
    plan.Clear();
    plan.set_step_id(s + 2);
    for (size_t i = 0; i < prompts.size(); ++i) plan.add_decodes(static_cast<int64_t>(i));
  }
  return run;
}

class WorkerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(WorkerTest, TensorParallelTwoEqualsOneAndGolden) {
  const Golden golden = LoadGolden(GetParam());
  WorkerGroup tp1(1), tp2(2);
  ASSERT_TRUE(tp1.ok() && tp2.ok());
  ASSERT_TRUE(tp1.Load(GoldenModelDir(GetParam()), kKvBytes).ok());
  const absl::Status loaded = tp2.Load(GoldenModelDir(GetParam()), kKvBytes);
  ASSERT_TRUE(loaded.ok()) << loaded;
  const int steps = static_cast<int>(golden.greedy[0].size()) - 1;
  const GenerateRun one = Generate(tp1, golden.prompts, steps);
  const GenerateRun two = Generate(tp2, golden.prompts, steps);
  for (size_t i = 0; i < golden.prompts.size(); ++i) {
    EXPECT_EQ(one.tokens[0][i], golden.greedy[i]) << "TP=1, case " << i;
    EXPECT_EQ(two.tokens[0][i], golden.greedy[i]) << "TP=2 rank 0, case " << i;
    EXPECT_EQ(two.tokens[1][i], two.tokens[0][i]) << "TP=2 ranks disagree, case " << i;
    ASSERT_EQ(two.logprobs[0][i].size(), one.logprobs[0][i].size());
    for (size_t k = 0; k < one.logprobs[0][i].size(); ++k) {
      EXPECT_NEAR(two.logprobs[0][i][k], one.logprobs[0][i][k], 1e-4) << "case " << i;
      EXPECT_EQ(two.logprobs[1][i][k], two.logprobs[0][i][k]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, WorkerTest, ::testing::Values("qwen3", "qwen3_dms"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// A vocabulary that two ranks cannot split evenly (251 tokens: 126 + 125 and a zero padding
// row on rank 1): the shards pad the embedding and the LM head, the padding never reaches the
// logits, and TP 2 generates what TP 1 does.
TEST(WorkerLoad, OddVocabularyTensorParallelTwoEqualsOne) {
  absl::StatusOr<ScopedTempDir> odd =
      CopyWithVocabulary(GoldenModelDir("qwen3_dms"), 251, ::testing::TempDir());
  ASSERT_TRUE(odd.ok()) << odd.status();
  WorkerGroup tp1(1), tp2(2);
  ASSERT_TRUE(tp1.ok() && tp2.ok());
  ASSERT_TRUE(tp1.Load(odd->path(), kKvBytes).ok());
  const absl::Status loaded = tp2.Load(odd->path(), kKvBytes);
  ASSERT_TRUE(loaded.ok()) << loaded;
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 250, 9, 17}, {250, 249}};
  const GenerateRun one = Generate(tp1, prompts, 12);
  const GenerateRun two = Generate(tp2, prompts, 12);
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_EQ(one.tokens[0][i].size(), 13u);
    EXPECT_EQ(two.tokens[0][i], one.tokens[0][i]) << "case " << i;
    EXPECT_EQ(two.tokens[1][i], two.tokens[0][i]) << "ranks disagree, case " << i;
    for (int32_t token : one.tokens[0][i]) EXPECT_LT(token, 251);
    for (size_t k = 0; k < one.logprobs[0][i].size(); ++k) {
      EXPECT_NEAR(two.logprobs[0][i][k], one.logprobs[0][i][k], 1e-4) << "case " << i;
    }
  }
}

void ExpectStepError(WorkerGroup& group, const v1::StepPlan& plan, grpc::StatusCode code,
                     const std::string& needle) {
  const v1::StepResult result = group.Step(plan)[0];
  EXPECT_EQ(result.error_code(), code) << result.error_message();
  EXPECT_NE(result.error_message().find(needle), std::string::npos) << result.error_message();
}

// The largest step the coordinator announced at load (max_step_tokens, max_step_sequences): a
// bigger plan is refused, naming the limit; one within runs.
TEST(WorkerPlans, StepsOverTheLoadedLimitsAreRefused) {
  WorkerProcess worker;
  ASSERT_TRUE(worker.ok());
  v1::LoadShardRequest request;
  request.set_model_dir(GoldenModelDir("qwen3"));
  request.set_world_size(1);
  request.set_kv_cache_bytes(kKvBytes);
  request.set_max_step_tokens(8);
  request.set_max_step_sequences(2);
  SetTestLease(request);
  v1::LoadShardResponse response;
  grpc::ClientContext ctx;
  const grpc::Status loaded = worker.stub().LoadShard(&ctx, request, &response);
  ASSERT_TRUE(loaded.ok()) << loaded.error_message();
  grpc::ClientContext step_ctx;
  auto stream = worker.stub().Step(&step_ctx);
  auto run = [&](v1::StepPlan plan) {
    plan.set_lease_epoch(kTestLeaseEpoch);
    v1::StepResult result;
    EXPECT_TRUE(stream->Write(plan) && stream->Read(&result));
    return result;
  };
  v1::StepPlan plan;
  for (int seq = 1; seq <= 3; ++seq) {
    v1::PrefillChunk* p = plan.add_prefills();
    p->set_seq_id(seq);
    p->set_create(true);
    p->add_token_ids(seq);
    *p->mutable_sampling() = Greedy();
  }
  v1::StepResult result = run(plan);
  EXPECT_EQ(result.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(result.error_message().find("3 sequences: over the shard's max_step_sequences (2)"),
            std::string::npos)
      << result.error_message();
  plan.mutable_prefills()->RemoveLast();
  plan.mutable_prefills(0)->mutable_token_ids()->Resize(8, 1);  // 8 + 1 tokens
  result = run(plan);
  EXPECT_NE(result.error_message().find("9 tokens: over the shard's max_step_tokens (8)"),
            std::string::npos)
      << result.error_message();
  plan.mutable_prefills(0)->mutable_token_ids()->Resize(7, 1);  // 7 + 1: at the limit
  result = run(plan);
  EXPECT_EQ(result.error_code(), 0) << result.error_message();
  stream->WritesDone();
}

TEST(WorkerPlans, MalformedPlansFailAndTheWorkerKeepsServing) {
  WorkerGroup group(1);
  ASSERT_TRUE(group.ok());
  ASSERT_TRUE(group.Load(GoldenModelDir("qwen3"), /*kv_cache_bytes=*/64 << 10).ok());
  v1::StepPlan plan;
  plan.add_decodes(7);
  ExpectStepError(group, plan, grpc::StatusCode::INVALID_ARGUMENT, "decodes: unknown sequence 7");
  plan.Clear();
  v1::PrefillChunk* p = plan.add_prefills();
  p->set_seq_id(1);
  p->set_create(true);
  p->add_token_ids(3);
  p->add_token_ids(256);
  *p->mutable_sampling() = Greedy();
  ExpectStepError(group, plan, grpc::StatusCode::INVALID_ARGUMENT, "token id 256 outside [0, 256)");
  p->set_token_ids(1, 5);
  p->mutable_sampling()->set_top_p(1.5f);
  ExpectStepError(group, plan, grpc::StatusCode::INVALID_ARGUMENT, "top_p");
  p->mutable_sampling()->set_top_p(0.9f);
  v1::Fork* fork = plan.add_forks();
  fork->set_parent(42);
  fork->add_children()->set_seq_id(2);
  ExpectStepError(group, plan, grpc::StatusCode::INVALID_ARGUMENT, "forks: parent 42");
  plan.clear_forks();
  // 64 KiB hold 64 pages of 4 tokens × 32 dims × K,V × fp32; 100 tokens in each of the
  // 4 (layer, head) streams need 100.
  v1::StepPlan big = plan;
  big.mutable_prefills(0)->mutable_token_ids()->Resize(100, 1);
  ExpectStepError(group, big, grpc::StatusCode::RESOURCE_EXHAUSTED, "pages");
  // The worker still serves: the valid plan runs, and its sequence then exists.
  v1::StepResult ok = group.Step(plan)[0];
  ASSERT_EQ(ok.error_code(), 0) << ok.error_message();
  ExpectStepError(group, plan, grpc::StatusCode::INVALID_ARGUMENT, "already exists");
  v1::StepPlan decode;
  decode.add_decodes(1);  // the prefill did not sample: nothing to feed yet
  ExpectStepError(group, decode, grpc::StatusCode::INVALID_ARGUMENT, "no sampled token yet");
  // A new turn that samples, then decodes: tokens 0 and 1 of the sequence.
  v1::StepPlan turn;
  v1::PrefillChunk* more = turn.add_prefills();
  more->set_seq_id(1);
  more->add_token_ids(9);
  more->set_sample(true);
  ok = group.Step(turn)[0];
  ASSERT_EQ(ok.error_code(), 0) << ok.error_message();
  ASSERT_EQ(ok.tokens_size(), 1);
  EXPECT_EQ(ok.tokens(0).index(), 0);
  ok = group.Step(decode)[0];
  ASSERT_EQ(ok.error_code(), 0) << ok.error_message();
  ASSERT_EQ(ok.tokens_size(), 1);
  EXPECT_EQ(ok.tokens(0).index(), 1);
  EXPECT_EQ(ok.cache().sequences(0).logical_tokens(), 4);  // 2 + 1 prompt tokens + 1 decode
}

TEST(WorkerPlans, ForkedBranchesSampleWithTheirOwnSeeds) {
  WorkerGroup group(1);
  ASSERT_TRUE(group.ok());
  ASSERT_TRUE(group.Load(GoldenModelDir("qwen3_dms"), kKvBytes).ok());
  auto branches = [&](uint64_t first_seed, int64_t root) {
    v1::StepPlan plan;
    v1::PrefillChunk* p = plan.add_prefills();
    p->set_seq_id(root);
    p->set_create(true);
    for (int t = 0; t < 20; ++t) p->add_token_ids((t * 37 + 11) % 256);
    *p->mutable_sampling() = Greedy();
    v1::Fork* fork = plan.add_forks();
    fork->set_parent(root);
    for (int c = 0; c < 8; ++c) {
      v1::ForkChild* child = fork->add_children();
      child->set_seq_id(root + 1 + c);
      child->mutable_sampling()->set_temperature(1.5f);
      child->mutable_sampling()->set_seed(first_seed + c % 4);  // pairs share a seed
    }
    std::vector<std::vector<int32_t>> tokens(8);
    for (int s = 0; s < 6; ++s) {
      const v1::StepResult result = group.Step(plan)[0];
      EXPECT_EQ(result.error_code(), 0) << result.error_message();
      for (const v1::SampledToken& t : result.tokens())
        tokens[t.seq_id() - root - 1].push_back(t.token_id());
      plan.Clear();
      for (int c = 0; c < 8; ++c) plan.add_decodes(root + 1 + c);
    }
    return tokens;
  };
  const auto first = branches(1, 100);
  EXPECT_EQ(branches(1, 200), first) << "same seeds, new sequence ids: same samples";
  for (int c = 0; c < 4; ++c) EXPECT_EQ(first[c], first[c + 4]) << "same seed, same branch";
  bool any_differ = false;
  for (int c = 1; c < 4; ++c) any_differ |= first[c] != first[0];
  EXPECT_TRUE(any_differ) << "different seeds should give different branches";
}

TEST(WorkerPlans, TensorParallelRanksFailABadPlanTogether) {
  WorkerGroup group(2);
  ASSERT_TRUE(group.ok());
  ASSERT_TRUE(group.Load(GoldenModelDir("qwen3"), kKvBytes).ok());
  v1::StepPlan bad;
  bad.add_decodes(5);
  for (const v1::StepResult& r : group.Step(bad)) {
    EXPECT_EQ(r.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << r.error_message();
  }
  const Golden golden = LoadGolden("qwen3");
  const GenerateRun run = Generate(group, {golden.prompts[1]}, 3);
  EXPECT_EQ(run.tokens[0][0],
            std::vector<int32_t>(golden.greedy[1].begin(), golden.greedy[1].begin() + 4));
}

// Not a pass/fail criterion: prints the control-plane round trip (plan → result over gRPC on
// loopback) of a one-token decode step, for TP=1 and TP=2.
TEST(WorkerTiming, ControlPlaneRoundTrip) {
  for (int world : {1, 2}) {
    WorkerGroup group(world);
    ASSERT_TRUE(group.ok());
    ASSERT_TRUE(group.Load(GoldenModelDir("qwen3"), kKvBytes).ok());
    Generate(group, {{1, 2, 3}}, 1);
    v1::StepPlan plan;
    plan.add_decodes(0);
    constexpr int kSteps = 200;
    double forward_ms = 0;
    const absl::Time start = absl::Now();
    for (int i = 0; i < kSteps; ++i) {
      const std::vector<v1::StepResult> results = group.Step(plan);
      ASSERT_EQ(results[0].error_code(), 0) << results[0].error_message();
      forward_ms += results[0].timing().total_ms();
    }
    const double round_trip_ms = absl::ToDoubleMilliseconds(absl::Now() - start) / kSteps;
    std::printf(
        "control plane, TP=%d: %.3f ms per step round trip, %.3f ms of it in the "
        "worker's step (%.3f ms overhead)\n",
        world, round_trip_ms, forward_ms / kSteps, round_trip_ms - forward_ms / kSteps);
  }
}

TEST(WorkerFaults, DeadPeerFailsTheStepWithinTheTimeout) {
  WorkerGroup group(2);
  ASSERT_TRUE(group.ok());
  ASSERT_TRUE(
      group.Load(GoldenModelDir("qwen3"), kKvBytes, /*collective_timeout_seconds=*/2.0).ok());
  const Golden golden = LoadGolden("qwen3");
  Generate(group, {golden.prompts[0]}, 1);
  group.rank(1).Kill();
  v1::StepPlan plan;
  plan.set_step_id(99);
  plan.add_decodes(0);
  const absl::Time start = absl::Now();
  const v1::StepResult result = group.Step(plan, {0})[0];
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_NE(result.error_code(), 0);
  EXPECT_LT(seconds, 10.0);
  v1::HealthResponse health;
  grpc::ClientContext ctx;
  ASSERT_TRUE(group.rank(0).stub().Health(&ctx, v1::HealthRequest(), &health).ok());
  EXPECT_EQ(health.state(), v1::HealthResponse::BROKEN);
}

TEST(WorkerLeases, OneHolderAtATimeAndStaleEpochsAreRefused) {
  WorkerProcess worker;
  ASSERT_TRUE(worker.ok());
  auto load = [&](const std::string& holder, int64_t epoch, double seconds) {
    v1::LoadShardRequest request;
    request.set_model_dir(GoldenModelDir("qwen3"));
    request.set_world_size(1);
    request.set_kv_cache_bytes(kKvBytes);
    request.mutable_lease()->set_holder(holder);
    request.mutable_lease()->set_epoch(epoch);
    request.mutable_lease()->set_seconds(seconds);
    grpc::ClientContext ctx;
    v1::LoadShardResponse response;
    return worker.stub().LoadShard(&ctx, request, &response);
  };
  auto renew = [&](const std::string& holder, int64_t epoch) {
    v1::RenewLeaseRequest request;
    request.set_holder(holder);
    request.set_epoch(epoch);
    grpc::ClientContext ctx;
    v1::RenewLeaseResponse response;
    return worker.stub().RenewLease(&ctx, request, &response);
  };
  EXPECT_EQ(load("", 1, 10).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(load("a", 0, 10).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(load("a", 1, 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(load("a", 1, 0.5).ok());
  const grpc::Status refused = load("b", 7, 10);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // The refusal names neither the holder nor the epoch (a caller could take them over).
  EXPECT_EQ(refused.error_message().find("\"a\""), std::string::npos) << refused.error_message();
  EXPECT_NE(refused.error_message().find("another coordinator"), std::string::npos)
      << refused.error_message();
  EXPECT_TRUE(renew("a", 1).ok());
  EXPECT_EQ(renew("a", 2).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(load("a", 2, 0.5).ok());  // the same holder takes over at once
  absl::SleepFor(absl::Milliseconds(700));
  ASSERT_TRUE(load("b", 7, 10).ok());  // a's lease lapsed
  // a's plans are refused from now on; b's run.
  grpc::ClientContext ctx;
  auto stream = worker.stub().Step(&ctx);
  v1::StepPlan plan;
  plan.set_lease_epoch(2);
  v1::StepResult result;
  ASSERT_TRUE(stream->Write(plan) && stream->Read(&result));
  EXPECT_EQ(result.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(result.error_message().find("lease lost"), std::string::npos);
  plan.set_lease_epoch(7);
  ASSERT_TRUE(stream->Write(plan) && stream->Read(&result));
  EXPECT_EQ(result.error_code(), 0) << result.error_message();
  stream->WritesDone();
}

// dtype: unset is the device's default, the CPU backend takes fp32 only, and an enum value the
// worker does not know (a newer coordinator) or a negative CUDA ordinal is refused by name.
TEST(WorkerLoad, DtypeIsValidatedPerDevice) {
  WorkerProcess worker;
  ASSERT_TRUE(worker.ok());
  auto load = [&](const v1::Device& device, int dtype, v1::LoadShardResponse* response) {
    v1::LoadShardRequest request;
    request.set_model_dir(GoldenModelDir("qwen3"));
    request.set_world_size(1);
    request.set_kv_cache_bytes(kKvBytes);
    *request.mutable_device() = device;
    request.set_dtype(static_cast<v1::ComputeDType>(dtype));
    SetTestLease(request);
    grpc::ClientContext ctx;
    return worker.stub().LoadShard(&ctx, request, response);
  };
  v1::Device cpu, unset, bad_index, cuda;
  cpu.set_kind(v1::DEVICE_KIND_CPU);
  bad_index.set_kind(v1::DEVICE_KIND_CUDA);
  bad_index.set_index(-1);
  cuda.set_kind(v1::DEVICE_KIND_CUDA);
  const struct {
    v1::Device device;
    int dtype;
    std::string message;
  } refused[] = {{cpu, v1::COMPUTE_DTYPE_BF16, "LoadShard: dtype: bf16 needs a CUDA device"},
                 {unset, v1::COMPUTE_DTYPE_BF16, "LoadShard: dtype: bf16 needs a CUDA device"},
                 {cpu, 7, "LoadShard: dtype: unknown value 7"},
                 {cuda, 9, "LoadShard: dtype: unknown value 9"},
                 {bad_index, v1::COMPUTE_DTYPE_BF16, "LoadShard: device.index: expected >= 0"}};
  for (const auto& c : refused) {
    SCOPED_TRACE(c.message);
    v1::LoadShardResponse response;
    const grpc::Status s = load(c.device, c.dtype, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find(c.message), std::string::npos) << s.error_message();
  }
  for (const int dtype : {v1::COMPUTE_DTYPE_UNSPECIFIED, v1::COMPUTE_DTYPE_FP32}) {
    for (const v1::Device& device : {unset, cpu}) {
      SCOPED_TRACE(::testing::Message() << device.kind() << " " << dtype);
      v1::LoadShardResponse response;
      const grpc::Status s = load(device, dtype, &response);
      ASSERT_TRUE(s.ok()) << s.error_message();
      EXPECT_EQ(response.dtype(), v1::COMPUTE_DTYPE_FP32);
    }
  }
}

// device: cuda:0 either loads the CUDA backend (a GPU: bf16 by default, a pool reported) or
// fails the request naming the device (no GPU here: cudaSetDevice fails; UNIMPLEMENTED in a
// worker built without CUDA) — and the worker keeps serving: a CPU load succeeds afterwards.
TEST(WorkerLoad, CudaDeviceLoadsOrFailsCleanly) {
  WorkerProcess worker;
  ASSERT_TRUE(worker.ok());
  v1::LoadShardRequest request;
  request.set_model_dir(GoldenModelDir("qwen3_dms_hd64"));
  request.set_world_size(1);
  request.mutable_device()->set_kind(v1::DEVICE_KIND_CUDA);
  request.set_gpu_memory_utilization(0.5);
  SetTestLease(request);
  v1::LoadShardResponse response;
  grpc::ClientContext ctx;
  const grpc::Status s = worker.stub().LoadShard(&ctx, request, &response);
  if (s.ok()) {
    EXPECT_EQ(response.dtype(), v1::COMPUTE_DTYPE_BF16);
    EXPECT_GT(response.num_pages(), 0);
    EXPECT_GT(response.kv_cache_bytes(), 0);
  } else {
    EXPECT_TRUE(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                s.error_code() == grpc::StatusCode::UNIMPLEMENTED)
        << s.error_code() << " " << s.error_message();
    EXPECT_NE(s.error_message().find("device"), std::string::npos) << s.error_message();
  }
  request.mutable_device()->set_kind(v1::DEVICE_KIND_CPU);
  request.set_kv_cache_bytes(kKvBytes);
  grpc::ClientContext again;
  const grpc::Status cpu = worker.stub().LoadShard(&again, request, &response);
  EXPECT_TRUE(cpu.ok()) << cpu.error_message();
}

TEST(WorkerLifecycle, ShutdownExitsZero) {
  WorkerGroup group(2);
  ASSERT_TRUE(group.ok());
  ASSERT_TRUE(group.Load(GoldenModelDir("qwen3"), kKvBytes).ok());
  for (int r = 0; r < 2; ++r) {
    grpc::ClientContext ctx;
    v1::ShutdownRequest request;
    request.set_holder(WorkerGroup::kTestLeaseHolder);
    request.set_epoch(group.lease_epoch());
    v1::ShutdownResponse response;
    EXPECT_TRUE(group.rank(r).stub().Shutdown(&ctx, request, &response).ok());
  }
  for (int r = 0; r < 2; ++r) EXPECT_EQ(group.rank(r).WaitExit(10), 0) << "rank " << r;
}

// A worker whose rendezvous store has a client waiting for a key that never comes (a peer
// that never joins) still stops at once on Shutdown or SIGTERM: the wait ends UNAVAILABLE.
// (An unloaded worker holds no lease: any Shutdown is taken.)
TEST(WorkerLifecycle, APendingStoreGetDoesNotHoldTheStop) {
  for (const bool signal : {false, true}) {
    SCOPED_TRACE(signal ? "SIGTERM" : "Shutdown RPC");
    // An open (tokenless, loopback) worker: its store serves any caller, as before auth.
    WorkerProcess worker(RAMI_WORKER_BINARY, {"--model_roots=" + TestModelRoots()});
    ASSERT_TRUE(worker.ok());
    grpc::Status got;
    std::thread waiter([&] {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
      v1::StoreGetRequest request;
      request.add_keys("a-peer-that-never-comes");
      request.set_timeout_seconds(60);
      v1::StoreGetResponse response;
      got = worker.stub().StoreGet(&ctx, request, &response);
    });
    absl::SleepFor(absl::Milliseconds(300));  // the StoreGet is waiting in the worker
    const absl::Time start = absl::Now();
    if (signal) {
      worker.Terminate();
    } else {
      grpc::ClientContext ctx;
      v1::ShutdownResponse response;
      EXPECT_TRUE(worker.stub().Shutdown(&ctx, v1::ShutdownRequest(), &response).ok());
    }
    EXPECT_EQ(worker.WaitExit(5), 0);
    waiter.join();
    EXPECT_LT(absl::Now() - start, absl::Seconds(5));
    EXPECT_FALSE(got.ok());
  }
}

// A rank whose step waits in a collective on a peer that stopped answering (SIGSTOP: its
// sockets stay open, so only the collective timeout would end the wait) still stops within
// 2 s of Shutdown or SIGTERM: the process leaves the blocked step behind.
TEST(WorkerLifecycle, AStepBlockedInACollectiveDoesNotHoldTheStop) {
  for (const bool signal : {false, true}) {
    SCOPED_TRACE(signal ? "SIGTERM" : "Shutdown RPC");
    WorkerGroup group(2);
    ASSERT_TRUE(group.ok());
    const absl::Status loaded =
        group.Load(GoldenModelDir("qwen3"), kKvBytes, /*collective_timeout_seconds=*/60);
    if (absl::IsUnimplemented(loaded)) GTEST_SKIP() << loaded;  // a build without Gloo
    ASSERT_TRUE(loaded.ok()) << loaded;
    group.rank(1).Stop();
    v1::StepPlan plan;
    plan.set_step_id(1);
    v1::PrefillChunk* p = plan.add_prefills();
    p->set_seq_id(1);
    p->add_token_ids(1);
    p->set_create(true);
    p->set_sample(true);
    *p->mutable_sampling() = Greedy();
    std::vector<v1::StepResult> results;
    std::thread step([&] { results = group.Step(plan, {0}); });
    absl::SleepFor(absl::Milliseconds(500));  // rank 0 waits in the step's first collective
    const absl::Time start = absl::Now();
    if (signal) {
      group.rank(0).Terminate();
    } else {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      v1::ShutdownRequest request;
      request.set_holder(WorkerGroup::kTestLeaseHolder);
      request.set_epoch(group.lease_epoch());
      v1::ShutdownResponse response;
      EXPECT_TRUE(group.rank(0).stub().Shutdown(&ctx, request, &response).ok());
    }
    EXPECT_EQ(group.rank(0).WaitExit(5), 0);
    EXPECT_LT(absl::Now() - start, absl::Seconds(3));
    step.join();
    ASSERT_EQ(results.size(), 1u);
    EXPECT_NE(results[0].error_code(), 0);  // the step never finished
    group.rank(1).Continue();
  }
}

}  // namespace
}  // namespace rami::testing
