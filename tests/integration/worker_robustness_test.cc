// Hostile inputs over real rami-worker processes; the worker never dies of them. NaN logits: a
// checkpoint whose logits are NaN for some sequences (one token's embedding row is NaN) or all
// of them (the final norm is NaN) fails those sequences in StepResult.sequence_errors,
// identically on both tensor-parallel ranks, while the step and the other sequences go on. A
// KV pool larger than the host's memory is RESOURCE_EXHAUSTED naming kv_cache_bytes.
#include <cmath>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "tests/integration/worker_group.h"
#include "tests/testing/safetensors_writer.h"

namespace rami::testing {
namespace {

namespace v1 = worker::v1;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr int64_t kKvBytes = 8 << 20;
constexpr int32_t kPoisonToken = 7;

void AddPrefill(v1::StepPlan& plan, int64_t seq, std::vector<int32_t> tokens) {
  v1::PrefillChunk* p = plan.add_prefills();
  p->set_seq_id(seq);
  p->mutable_token_ids()->Assign(tokens.begin(), tokens.end());
  p->set_create(true);
  p->set_sample(true);
  p->mutable_sampling()->set_logprobs(2);
}

std::vector<int64_t> TokenSeqs(const v1::StepResult& r) {
  std::vector<int64_t> ids;
  for (const v1::SampledToken& t : r.tokens()) ids.push_back(t.seq_id());
  return ids;
}

std::vector<int64_t> FailedSeqs(const v1::StepResult& r) {
  std::vector<int64_t> ids;
  for (const v1::SequenceError& e : r.sequence_errors()) ids.push_back(e.seq_id());
  return ids;
}

TEST(WorkerNan, NanLogitsFailTheSequenceOnEveryRankAndTheWorkersServeOn) {
  absl::StatusOr<ScopedTempDir> dir =
      CopyWithTensorValue(GoldenModelDir("qwen3"), "model.embed_tokens.weight", {kPoisonToken}, NAN,
                          ::testing::TempDir());
  ASSERT_TRUE(dir.ok()) << dir.status();
  WorkerGroup group(2);
  ASSERT_TRUE(group.ok());
  const absl::Status loaded = group.Load(dir->path(), kKvBytes);
  if (absl::IsUnimplemented(loaded)) GTEST_SKIP() << loaded;  // a build without Gloo
  ASSERT_TRUE(loaded.ok()) << loaded;

  v1::StepPlan plan;
  plan.set_step_id(1);
  AddPrefill(plan, 1, {5, 17, 99});
  AddPrefill(plan, 2, {5, kPoisonToken, 9});
  std::vector<v1::StepResult> results = group.Step(plan);
  for (const v1::StepResult& r : results) {
    ASSERT_EQ(r.error_code(), 0) << r.error_message();
    EXPECT_THAT(TokenSeqs(r), UnorderedElementsAre(1));
    ASSERT_THAT(FailedSeqs(r), UnorderedElementsAre(2));
    EXPECT_EQ(r.sequence_errors(0).error_code(), grpc::StatusCode::INTERNAL);
    EXPECT_THAT(r.sequence_errors(0).error_message(),
                HasSubstr("sequence 2, generated token 0 (step 1)"));
    EXPECT_THAT(r.sequence_errors(0).error_message(), HasSubstr("non-finite logit nan"));
  }
  EXPECT_EQ(results[0].tokens(0).token_id(), results[1].tokens(0).token_id());

  // Planned again before the coordinator knew: the same error; the clean sequence decodes.
  plan.Clear();
  plan.set_step_id(2);
  plan.add_decodes(1);
  plan.add_decodes(2);
  results = group.Step(plan);
  for (const v1::StepResult& r : results) {
    ASSERT_EQ(r.error_code(), 0) << r.error_message();
    EXPECT_THAT(TokenSeqs(r), UnorderedElementsAre(1));
    EXPECT_THAT(FailedSeqs(r), UnorderedElementsAre(2));
  }

  // Freed, and a new request is served by both ranks, which are still healthy.
  plan.Clear();
  plan.set_step_id(3);
  plan.add_frees(2);
  AddPrefill(plan, 3, {4, 5, 6});
  results = group.Step(plan);
  for (int r = 0; r < group.size(); ++r) {
    ASSERT_EQ(results[r].error_code(), 0) << results[r].error_message();
    EXPECT_THAT(TokenSeqs(results[r]), UnorderedElementsAre(3));
    EXPECT_EQ(results[r].sequence_errors_size(), 0);
    grpc::ClientContext ctx;
    v1::HealthResponse health;
    ASSERT_TRUE(group.rank(r).stub().Health(&ctx, v1::HealthRequest(), &health).ok());
    EXPECT_EQ(health.state(), v1::HealthResponse::SERVING);
  }
}

TEST(WorkerNan, AllNanWeightsFailEveryRequestNotTheWorker) {
  absl::StatusOr<ScopedTempDir> dir = CopyWithTensorValue(
      GoldenModelDir("qwen3"), "model.norm.weight", {}, NAN, ::testing::TempDir());
  ASSERT_TRUE(dir.ok()) << dir.status();
  WorkerGroup group(1);
  ASSERT_TRUE(group.ok());
  ASSERT_TRUE(group.Load(dir->path(), kKvBytes).ok());
  for (int64_t seq = 0; seq < 3; ++seq) {
    v1::StepPlan plan;
    plan.set_step_id(static_cast<uint64_t>(seq));
    AddPrefill(plan, seq, {1, 2, 3});
    const v1::StepResult r = group.Step(plan)[0];
    ASSERT_EQ(r.error_code(), 0) << r.error_message();
    EXPECT_EQ(r.tokens_size(), 0);
    EXPECT_THAT(FailedSeqs(r), UnorderedElementsAre(seq));
  }
}

TEST(WorkerLoad, KvPoolLargerThanTheHostIsResourceExhausted) {
  WorkerProcess worker;
  ASSERT_TRUE(worker.ok());
  auto load = [&](int64_t kv_cache_bytes) {
    v1::LoadShardRequest request;
    request.set_model_dir(GoldenModelDir("qwen3"));
    request.set_world_size(1);
    request.set_kv_cache_bytes(kv_cache_bytes);
    SetTestLease(request);
    v1::LoadShardResponse response;
    grpc::ClientContext ctx;
    return worker.stub().LoadShard(&ctx, request, &response);
  };
  const grpc::Status huge = load(int64_t{1} << 40);  // 1 TiB
  EXPECT_EQ(huge.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << huge.error_message();
  EXPECT_THAT(huge.error_message(), HasSubstr("kv_cache_bytes"));
  EXPECT_THAT(huge.error_message(), HasSubstr("host memory available"));
  const grpc::Status ok = load(kKvBytes);  // the worker is still there, and loads
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

}  // namespace
}  // namespace rami::testing
