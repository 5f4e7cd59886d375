// Prompt log-probs (PlanPrefill::prompt_logprobs) through the Engine on the CPU backend, against
// two independent references:
//  * a teacher-forced decode: the same checkpoint fed one prompt token per step through
//    Model::Forward, each step's logits row log-softmaxed here in double at the next token;
//  * Hugging Face's own prefill logits (golden.json) for the golden prompt.
// The prompt is split into chunks of 1, 3 and all at once (every chunking must give the same
// scores: a chunk's first token comes from the previous chunk's kept row), long enough that the
// backend scores it in several slices (kScoreSliceRows), dense and under DMS.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "tests/testing/prompt_scoring.h"
#include "worker/cpu/model.h"
#include "worker/engine/engine.h"
#include "worker/engine/token_scores.h"

namespace rami {
namespace {

using collectives::SingleRankCollectives;
using cpu::Model;
using engine::Engine;
using engine::PlanPrefill;
using engine::PromptLogprobs;
using engine::PromptTokenLogprob;
using engine::SequenceChunk;
using engine::StepOutcome;
using engine::StepPlan;
using kv::CachePolicy;
using kv::KvCache;

constexpr int kTopN = 5;

// The reference score of `token` under one logits row: log-softmax in double, top n by
// (logit descending, id ascending).
struct RefScore {
  double logprob = 0;
  std::vector<int32_t> top_ids;
  std::vector<double> top_logprobs;
};

RefScore Reference(const std::vector<float>& row, int32_t token) {
  double max = -INFINITY;
  for (float x : row) max = std::max(max, static_cast<double>(x));
  double sum = 0;
  for (float x : row) sum += std::exp(x - max);
  const double log_z = max + std::log(sum);
  std::vector<int32_t> ids(row.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
  RefScore ref{.logprob = row[token] - log_z, .top_ids = {}, .top_logprobs = {}};
  for (int j = 0; j < kTopN; ++j) {
    ref.top_ids.push_back(ids[j]);
    ref.top_logprobs.push_back(row[ids[j]] - log_z);
  }
  return ref;
}

std::unique_ptr<Model> Load(const std::string& name) {
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(testing::GoldenModelDir(name), {});
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

CachePolicy PolicyOf(const Model& model, bool dms) {
  return dms ? model.shape().DefaultCachePolicy() : CachePolicy::Dense();
}

// Teacher-forced decode: logits row p is the model's prediction for position p + 1.
std::vector<std::vector<float>> DecodeRows(const std::string& name, bool dms,
                                           const std::vector<int32_t>& prompt) {
  std::unique_ptr<Model> model = Load(name);
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      model->shape().MakeCache({.page_size = 4, .num_pages = 2048}, PolicyOf(*model, dms));
  EXPECT_TRUE(cache.ok()) << cache.status();
  EXPECT_TRUE((*cache)->AddSequence(1).ok());
  SingleRankCollectives comm;
  std::vector<std::vector<float>> rows;
  for (int32_t token : prompt) {
    const SequenceChunk chunk{.seq_id = 1, .tokens = {token}};
    absl::StatusOr<engine::ForwardResult> result = model->Forward({&chunk, 1}, **cache, comm);
    EXPECT_TRUE(result.ok()) << result.status();
    rows.push_back(result->logits);
  }
  return rows;
}

std::unique_ptr<Engine> MakeEngine(const std::string& name, bool dms) {
  std::unique_ptr<Model> model = Load(name);
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      model->shape().MakeCache({.page_size = 4, .num_pages = 4096}, PolicyOf(*model, dms));
  EXPECT_TRUE(cache.ok()) << cache.status();
  return std::make_unique<Engine>(std::move(model), std::move(*cache),
                                  std::make_unique<SingleRankCollectives>());
}

// The prompt's scores through an Engine, `chunk` tokens a step (0: all at once). A second
// sequence, not scored, prefills alongside in every step.
std::vector<PromptTokenLogprob> EngineScores(const std::string& name, bool dms,
                                             const std::vector<int32_t>& prompt, size_t chunk) {
  std::unique_ptr<Engine> engine = MakeEngine(name, dms);
  if (chunk == 0) chunk = prompt.size();
  return testing::ScorePromptInChunks(*engine, prompt, chunk, kTopN, /*scored_first=*/false);
}

// A prompt of `length` tokens starting with golden case 2's prompt.
std::vector<int32_t> LongPrompt(const std::string& name, size_t length) {
  absl::StatusOr<std::vector<testing::GoldenCase>> cases = testing::LoadGoldenCases(name);
  EXPECT_TRUE(cases.ok()) << cases.status();
  std::vector<int32_t> prompt = cases->back().prompt;
  std::mt19937 rng(5);
  while (prompt.size() < length) prompt.push_back(static_cast<int32_t>(rng() % 256));
  return prompt;
}

struct Case {
  std::string model;
  bool dms = false;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.model << (c.dms ? " dms" : " dense"); }

class PromptLogprobsTest : public ::testing::TestWithParam<Case> {};

TEST_P(PromptLogprobsTest, EqualTeacherForcedDecodeInEveryChunking) {
  const Case c = GetParam();
  // 150 tokens: 149 scored rows, three slices when the prompt comes at once.
  const std::vector<int32_t> prompt = LongPrompt(c.model, 150);
  ASSERT_GT(prompt.size(), 2u * engine::kScoreSliceRows + 1);
  const std::vector<std::vector<float>> rows = DecodeRows(c.model, c.dms, prompt);
  std::vector<PromptTokenLogprob> first;
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{0}}) {
    const std::vector<PromptTokenLogprob> got = EngineScores(c.model, c.dms, prompt, chunk);
    ASSERT_EQ(got.size(), prompt.size() - 1) << "chunk " << chunk;
    for (size_t i = 0; i < got.size(); ++i) {
      const int64_t p = static_cast<int64_t>(i) + 1;  // position 0 is never scored
      const std::string where = "chunk " + std::to_string(chunk) + " position " + std::to_string(p);
      ASSERT_EQ(got[i].position, p) << where;
      EXPECT_EQ(got[i].score.token_id, prompt[p]) << where;
      const RefScore ref = Reference(rows[p - 1], prompt[p]);
      EXPECT_NEAR(got[i].score.logprob, ref.logprob, 1e-4) << where;
      ASSERT_EQ(got[i].score.top.size(), static_cast<size_t>(kTopN)) << where;
      for (int j = 0; j < kTopN; ++j) {
        EXPECT_EQ(got[i].score.top[j].token_id, ref.top_ids[j]) << where << " top " << j;
        EXPECT_NEAR(got[i].score.top[j].logprob, ref.top_logprobs[j], 1e-4) << where;
      }
      // Every chunking computes the same function of the same tokens.
      if (!first.empty()) {
        EXPECT_NEAR(got[i].score.logprob, first[i].score.logprob, 1e-5) << where;
      }
    }
    if (first.empty()) first = got;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, PromptLogprobsTest,
                         ::testing::Values(Case{"qwen3", false}, Case{"llama", false},
                                           Case{"qwen3_dms", true}, Case{"qwen3_dms", false}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.model + (info.param.dms ? "_dms" : "_dense");
                         });

// Against transformers: golden.json's prefill logits of every golden prompt.
TEST(PromptLogprobs, EqualHuggingFaceLogSoftmax) {
  for (const std::string name : {"qwen3", "llama", "qwen2"}) {
    absl::StatusOr<std::vector<testing::GoldenCase>> cases = testing::LoadGoldenCases(name);
    ASSERT_TRUE(cases.ok()) << cases.status();
    for (const testing::GoldenCase& golden : *cases) {
      const std::vector<PromptTokenLogprob> got = EngineScores(name, false, golden.prompt, 0);
      ASSERT_EQ(got.size(), golden.prompt.size() - 1) << name;
      for (size_t i = 0; i < got.size(); ++i) {
        const RefScore ref = Reference(golden.prefill_logits[i], golden.prompt[i + 1]);
        EXPECT_NEAR(got[i].score.logprob, ref.logprob, 2e-4) << name << " position " << i + 1;
      }
    }
  }
}

// After a decode the sequence's last logits are not held: the next chunk's first token (the
// sampled one) is not scored; the rest are, and a replay cannot be scored.
TEST(PromptLogprobs, FirstTokenAfterADecodeIsNotScoredAndAReplayIsRefused) {
  std::unique_ptr<Engine> engine = MakeEngine("qwen3", false);
  StepPlan plan{
      .step_id = 0, .frees = {}, .prefills = {}, .decodes = {}, .forks = {}, .snapshots = {}};
  plan.prefills.push_back({.seq_id = 1,
                           .tokens = {3, 4, 5},
                           .create = true,
                           .sample = true,
                           .sampling = SamplingParams{.logprobs = 2},
                           .generated_tokens = 0,
                           .prompt_logprobs = true,
                           .copy_of = std::nullopt});
  StepOutcome out = engine->Execute(plan);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.prompt_logprobs.size(), 1u);
  ASSERT_EQ(out.prompt_logprobs[0].tokens.size(), 2u);
  EXPECT_EQ(out.prompt_logprobs[0].tokens[0].position, 1);
  EXPECT_EQ(out.prompt_logprobs[0].tokens[0].score.top.size(), 2u);

  plan = {.step_id = 1, .frees = {}, .prefills = {}, .decodes = {1}, .forks = {}, .snapshots = {}};
  ASSERT_TRUE(engine->Execute(plan).status.ok());
  // Positions 0-2 and 3 (the decode's input) are cached: the chunk (which would start with the
  // decode's sampled token) starts at 4, whose logits only the decode saw.
  plan = {.step_id = 2, .frees = {}, .prefills = {}, .decodes = {}, .forks = {}, .snapshots = {}};
  plan.prefills.push_back({.seq_id = 1,
                           .tokens = {9, 10, 11},
                           .create = false,
                           .sample = false,
                           .sampling = std::nullopt,
                           .generated_tokens = 0,
                           .prompt_logprobs = true,
                           .copy_of = std::nullopt});
  out = engine->Execute(plan);
  ASSERT_TRUE(out.status.ok()) << out.status;
  ASSERT_EQ(out.prompt_logprobs.size(), 1u);
  ASSERT_EQ(out.prompt_logprobs[0].tokens.size(), 2u);
  EXPECT_EQ(out.prompt_logprobs[0].tokens[0].position, 5);
  EXPECT_EQ(out.prompt_logprobs[0].tokens[1].position, 6);

  plan.step_id = 3;
  plan.prefills[0].generated_tokens = 2;
  out = engine->Execute(plan);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kInvalidArgument) << out.status;
  EXPECT_NE(out.status.message().find("prompt_logprobs"), std::string::npos) << out.status;
}

}  // namespace
}  // namespace rami
