// A checkpoint whose logits are NaN fails the sequences it poisons, never the step or the
// process: the Engine reports each such sequence in StepOutcome::sequence_errors (naming the
// sequence and the cause), samples the others as usual, keeps reporting the failed ones until a
// plan frees them, and goes on serving. Checkpoints: qwen3's golden one with one token's
// embedding row made NaN (only sequences holding that token break) or every weight of the final
// norm NaN (every sequence breaks).
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "tests/testing/safetensors_writer.h"
#include "worker/cpu/model.h"
#include "worker/engine/engine.h"

namespace rami {
namespace {

using collectives::SingleRankCollectives;
using cpu::Model;
using engine::Engine;
using engine::StepOutcome;
using engine::StepPlan;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr int32_t kPoisonToken = 7;  // its embedding row is NaN in PoisonedEmbedding()

std::unique_ptr<Engine> LoadEngine(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir, {});
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<kv::KvCache>> cache = (*model)->shape().MakeCache(
      {.page_size = 4, .num_pages = 256}, (*model)->shape().DefaultCachePolicy());
  EXPECT_TRUE(cache.ok()) << cache.status();
  return std::make_unique<Engine>(std::move(*model), std::move(*cache),
                                  std::make_unique<SingleRankCollectives>());
}

std::vector<kv::SeqId> TokenSeqs(const StepOutcome& out) {
  std::vector<kv::SeqId> ids;
  for (const auto& t : out.tokens) ids.push_back(t.seq_id);
  return ids;
}

std::vector<kv::SeqId> FailedSeqs(const StepOutcome& out) {
  std::vector<kv::SeqId> ids;
  for (const auto& e : out.sequence_errors) ids.push_back(e.seq_id);
  return ids;
}

engine::PlanPrefill Prefill(kv::SeqId id, std::vector<int32_t> tokens) {
  return {.seq_id = id,
          .tokens = std::move(tokens),
          .create = true,
          .sample = true,
          .sampling = SamplingParams{.temperature = 0.7f, .seed = 5, .logprobs = 2},
          .generated_tokens = 0,
          .prompt_logprobs = false,
          .copy_of = std::nullopt};
}

// A plan of `step` with nothing in it yet.
StepPlan EmptyPlan(uint64_t step) {
  StepPlan plan;
  plan.step_id = step;
  return plan;
}

TEST(EngineNanTest, NanLogitsFailTheirSequenceAndTheOthersGoOn) {
  absl::StatusOr<testing::ScopedTempDir> dir =
      testing::CopyWithTensorValue(testing::GoldenModelDir("qwen3"), "model.embed_tokens.weight",
                                   {kPoisonToken}, NAN, ::testing::TempDir());
  ASSERT_TRUE(dir.ok()) << dir.status();
  std::unique_ptr<Engine> engine = LoadEngine(dir->path());
  ASSERT_NE(engine, nullptr);

  // Step 0: a clean prompt and a poisoned one, each forked.
  StepPlan plan = EmptyPlan(0);
  plan.prefills = {Prefill(1, {5, 17, 99}), Prefill(2, {5, kPoisonToken, 9})};
  plan.forks = {{.parent = 1, .children = {{.seq_id = 10, .sampling = {.seed = 1}}}},
                {.parent = 2, .children = {{.seq_id = 20, .sampling = {.seed = 2}}}}};
  StepOutcome out = engine->Execute(plan);
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_THAT(TokenSeqs(out), UnorderedElementsAre(1, 10));
  ASSERT_THAT(FailedSeqs(out), UnorderedElementsAre(2, 20));
  for (const engine::SequenceError& e : out.sequence_errors) {
    EXPECT_EQ(e.status.code(), absl::StatusCode::kInternal);
    EXPECT_THAT(e.status.message(), HasSubstr("non-finite logit nan"));
    EXPECT_THAT(e.status.message(), HasSubstr(absl::StrCat("sequence ", e.seq_id)));
  }
  EXPECT_THAT(out.sequence_errors[0].status.message(),
              AllOf(HasSubstr("sequence 2, generated token 0 (step 0)"), HasSubstr("weights")));

  // Step 1: the failed sequences are planned again (a coordinator that pipelines steps does
  // not know yet): they report the same error, the others decode.
  plan = EmptyPlan(1);
  plan.decodes = {1, 2, 10, 20};
  out = engine->Execute(plan);
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_THAT(TokenSeqs(out), UnorderedElementsAre(1, 10));
  EXPECT_THAT(FailedSeqs(out), UnorderedElementsAre(2, 20));
  for (const auto& t : out.tokens) EXPECT_EQ(t.index, 1);

  // Step 2: freed, they are gone; a new clean request is served.
  plan = EmptyPlan(2);
  plan.frees = {2, 20};
  plan.decodes = {1};
  plan.prefills = {Prefill(3, {1, 2, 3})};
  out = engine->Execute(plan);
  ASSERT_TRUE(out.status.ok()) << out.status;
  EXPECT_THAT(TokenSeqs(out), UnorderedElementsAre(3, 1));
  EXPECT_TRUE(out.sequence_errors.empty());
  EXPECT_EQ(engine->Stats().failed_steps, 0u);
}

TEST(EngineNanTest, AllNanWeightsFailEverySequenceNotTheProcess) {
  absl::StatusOr<testing::ScopedTempDir> dir = testing::CopyWithTensorValue(
      testing::GoldenModelDir("qwen3"), "model.norm.weight", {}, NAN, ::testing::TempDir());
  ASSERT_TRUE(dir.ok()) << dir.status();
  std::unique_ptr<Engine> engine = LoadEngine(dir->path());
  ASSERT_NE(engine, nullptr);
  for (uint64_t step = 0; step < 3; ++step) {
    StepPlan plan = EmptyPlan(step);
    plan.prefills = {Prefill(static_cast<kv::SeqId>(step), {1, 2, 3})};
    if (step > 0) plan.frees = {static_cast<kv::SeqId>(step - 1)};
    const StepOutcome out = engine->Execute(plan);
    ASSERT_TRUE(out.status.ok()) << out.status;
    EXPECT_TRUE(out.tokens.empty());
    ASSERT_THAT(FailedSeqs(out), UnorderedElementsAre(static_cast<kv::SeqId>(step)));
    EXPECT_THAT(out.sequence_errors[0].status.message(), HasSubstr("non-finite logit nan"));
  }
}

}  // namespace
}  // namespace rami
