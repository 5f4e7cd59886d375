// Golden tests: the CPU backend, loading tiny Hugging Face checkpoints through the real
// loader, must reproduce transformers' logits (fp32, 1e-4 absolute) and greedy tokens
// (identical) — for the DMS checkpoints, the logits of the PyTorch DMS reference in
// make_golden.py (W = 8, prompts longer than W, most tokens evicted). Further properties checked on
// the same models: incremental decode equals full recompute, chunked prefill equals one-shot, a
// batch equals each prompt alone, and TP=2 (two ranks as threads with an in-process sum) equals
// TP=1. The DeepSeek models (make_golden_deepseek.py) run MLA + MoE, from fp8 weights too; the
// *_hd64 / *_hd128 models have the head sizes of the CUDA kernels (one with bf16 weights).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/golden/golden_files.h"
#include "tests/testing/compare.h"
#include "tests/testing/thread_collectives.h"
#include "worker/cpu/model.h"
#include "worker/engine/sampler.h"

namespace rami {

using collectives::Collectives;
using collectives::SingleRankCollectives;
using cpu::Model;
using engine::ForwardResult;
using engine::Sample;
using engine::SampledToken;
using engine::SampleRequest;
using engine::SequenceChunk;
using kv::CachePolicyKind;
using kv::KvCache;
using kv::SeqId;
using kv::SequenceStats;

namespace {

using testing::AllClose;
using testing::Tolerance;

constexpr Tolerance kGoldenTol{.atol = 1e-4};
// Same model, same math, different batching or sharding: only the summation order may differ.
constexpr Tolerance kSelfTol{.atol = 2e-5};

using testing::GoldenCase;
using testing::GoldenModelDir;

// Greedy choice through the worker's sampler (temperature 0).
int32_t Greedy(absl::Span<const float> logits) {
  const SampleRequest greedy;
  absl::StatusOr<std::vector<SampledToken>> out =
      Sample(logits, static_cast<int>(logits.size()), {&greedy, 1});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? (*out)[0].token_id : -1;
}

absl::Span<const float> Row(const ForwardResult& r, int row) {
  return {r.logits.data() + static_cast<size_t>(row) * r.vocab_size,
          static_cast<size_t>(r.vocab_size)};
}

// Runs prompts (one chunk each, or in chunks of `chunk` tokens), then `steps` greedy decode
// steps; returns per sequence the logits rows of every prompt position followed by one row
// per decode step, and the greedy tokens.
struct Trace {
  std::vector<std::vector<std::vector<float>>> rows;  // [seq][position][vocab]
  std::vector<std::vector<int32_t>> tokens;           // [seq][step]
};

Trace RunGreedy(const Model& model, Collectives& comm,
                const std::vector<std::vector<int32_t>>& prompts, int steps, int chunk = 0) {
  absl::StatusOr<std::unique_ptr<KvCache>> made = model.shape().MakeCache(
      {.page_size = 4, .num_pages = 4096}, model.shape().DefaultCachePolicy());
  EXPECT_TRUE(made.ok()) << made.status();
  if (!made.ok()) return {};
  std::unique_ptr<KvCache> cache = std::move(*made);
  Trace trace;
  trace.rows.resize(prompts.size());
  trace.tokens.resize(prompts.size());
  size_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_TRUE(cache->AddSequence(static_cast<SeqId>(i)).ok());
    longest = std::max(longest, prompts[i].size());
  }
  const size_t piece = chunk > 0 ? static_cast<size_t>(chunk) : longest;
  for (size_t start = 0; start < longest; start += piece) {  // prefill, chunk by chunk
    std::vector<SequenceChunk> batch;
    std::vector<size_t> owner;
    for (size_t i = 0; i < prompts.size(); ++i) {
      if (start >= prompts[i].size()) continue;
      const size_t end = std::min(prompts[i].size(), start + piece);
      batch.push_back({.seq_id = static_cast<SeqId>(i),
                       .tokens = {prompts[i].begin() + start, prompts[i].begin() + end},
                       .all_logits = true});
      owner.push_back(i);
    }
    absl::StatusOr<ForwardResult> out = model.Forward(batch, *cache, comm);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return trace;
    for (size_t b = 0; b < batch.size(); ++b) {
      for (size_t k = 0; k < batch[b].tokens.size(); ++k) {
        absl::Span<const float> row = Row(*out, out->first_row[b] + static_cast<int>(k));
        trace.rows[owner[b]].emplace_back(row.begin(), row.end());
      }
    }
  }
  for (int s = 0; s < steps; ++s) {
    std::vector<SequenceChunk> batch;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const int32_t token = Greedy(trace.rows[i].back());
      trace.tokens[i].push_back(token);
      batch.push_back({.seq_id = static_cast<SeqId>(i), .tokens = {token}});
    }
    absl::StatusOr<ForwardResult> out = model.Forward(batch, *cache, comm);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return trace;
    for (size_t i = 0; i < batch.size(); ++i) {
      absl::Span<const float> row = Row(*out, out->first_row[i]);
      trace.rows[i].emplace_back(row.begin(), row.end());
    }
  }
  return trace;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(GoldenModelDir(GetParam()), {});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    absl::StatusOr<std::vector<GoldenCase>> cases = testing::LoadGoldenCases(GetParam());
    ASSERT_TRUE(cases.ok()) << cases.status();
    cases_ = std::move(*cases);
    for (const GoldenCase& c : cases_) prompts_.push_back(c.prompt);
  }
  int Steps() const { return static_cast<int>(cases_[0].greedy.size()); }

  std::unique_ptr<Model> model_;
  std::vector<GoldenCase> cases_;
  std::vector<std::vector<int32_t>> prompts_;
  SingleRankCollectives single_;
};

TEST_P(GoldenTest, MatchesTransformers) {
  // All cases in one batch: prompts of different lengths prefilled together, decoded together.
  const Trace trace = RunGreedy(*model_, single_, prompts_, Steps());
  double max_error = 0.0;  // reported, so that the margin under the tolerance is visible
  auto track = [&](const std::vector<float>& got, const std::vector<float>& want) {
    for (size_t j = 0; j < got.size() && j < want.size(); ++j) {
      max_error = std::max(max_error, static_cast<double>(std::fabs(got[j] - want[j])));
    }
  };
  for (size_t i = 0; i < cases_.size(); ++i) {
    const GoldenCase& c = cases_[i];
    ASSERT_EQ(trace.rows[i].size(), c.prompt.size() + c.greedy.size());
    for (size_t p = 0; p < c.prompt.size(); ++p) track(trace.rows[i][p], c.prefill_logits[p]);
    for (size_t s = 0; s < c.greedy.size(); ++s) {
      track(trace.rows[i][c.prompt.size() + s], c.decode_logits[s]);
    }
    for (size_t p = 0; p < c.prompt.size(); ++p) {
      EXPECT_TRUE(AllClose(trace.rows[i][p], c.prefill_logits[p], kGoldenTol,
                           "case " + std::to_string(i) + " prefill position " + std::to_string(p)));
    }
    EXPECT_EQ(trace.tokens[i], c.greedy) << "case " << i << " greedy tokens";
    for (size_t s = 0; s < c.greedy.size(); ++s) {
      EXPECT_TRUE(AllClose(trace.rows[i][c.prompt.size() + s], c.decode_logits[s], kGoldenTol,
                           "case " + std::to_string(i) + " decode step " + std::to_string(s)));
    }
  }
  std::printf("%s: max |rami - golden| logit error %.3g\n", GetParam().c_str(), max_error);
  RecordProperty("max_logit_error", std::to_string(max_error));
}

TEST_P(GoldenTest, IncrementalDecodeEqualsFullRecompute) {
  const Trace inc = RunGreedy(*model_, single_, {prompts_.back()}, 8);
  std::vector<int32_t> full_prompt = prompts_.back();
  full_prompt.insert(full_prompt.end(), inc.tokens[0].begin(), inc.tokens[0].end());
  const Trace full = RunGreedy(*model_, single_, {full_prompt}, 0);
  ASSERT_EQ(full.rows[0].size(), inc.rows[0].size());
  for (size_t p = 0; p < full.rows[0].size(); ++p) {
    EXPECT_TRUE(
        AllClose(inc.rows[0][p], full.rows[0][p], kSelfTol, "position " + std::to_string(p)));
  }
}

TEST_P(GoldenTest, ChunkedPrefillEqualsOneShot) {
  const Trace one_shot = RunGreedy(*model_, single_, prompts_, 4);
  for (int chunk : {1, 3, 7}) {
    const Trace chunked = RunGreedy(*model_, single_, prompts_, 4, chunk);
    for (size_t i = 0; i < prompts_.size(); ++i) {
      EXPECT_EQ(chunked.tokens[i], one_shot.tokens[i]);
      for (size_t p = 0; p < one_shot.rows[i].size(); ++p) {
        EXPECT_TRUE(AllClose(chunked.rows[i][p], one_shot.rows[i][p], kSelfTol,
                             "chunk " + std::to_string(chunk) + " seq " + std::to_string(i) +
                                 " position " + std::to_string(p)));
      }
    }
  }
}

TEST_P(GoldenTest, BatchEqualsEachPromptAlone) {
  const Trace batch = RunGreedy(*model_, single_, prompts_, 6);
  for (size_t i = 0; i < prompts_.size(); ++i) {
    const Trace alone = RunGreedy(*model_, single_, {prompts_[i]}, 6);
    EXPECT_EQ(alone.tokens[0], batch.tokens[i]);
    for (size_t p = 0; p < alone.rows[0].size(); ++p) {
      EXPECT_TRUE(AllClose(batch.rows[i][p], alone.rows[0][p], kSelfTol,
                           "seq " + std::to_string(i) + " position " + std::to_string(p)));
    }
  }
}

// A child forked after the prompt (full pages shared, partial tail pages copied — K-only
// latent pages for MLA) decodes exactly like the unforked sequence; so does its sibling.
TEST_P(GoldenTest, ForkedChildrenDecodeLikeTheRoot) {
  const Trace plain = RunGreedy(*model_, single_, {prompts_.back()}, 6);
  absl::StatusOr<std::unique_ptr<KvCache>> cache = model_->shape().MakeCache(
      {.page_size = 3, .num_pages = 4096}, model_->shape().DefaultCachePolicy());
  ASSERT_TRUE(cache.ok()) << cache.status();
  ASSERT_TRUE((*cache)->AddSequence(0).ok());
  std::vector<SequenceChunk> step = {{.seq_id = 0, .tokens = prompts_.back()}};
  ASSERT_TRUE(model_->Forward(step, **cache, single_).ok());
  const std::vector<SeqId> children = {1, 2};
  ASSERT_TRUE((*cache)->Fork(0, children).ok());
  const size_t prompt_len = prompts_.back().size();
  for (SeqId child : children) {
    for (size_t s = 0; s < plain.tokens[0].size(); ++s) {
      step = {{.seq_id = child, .tokens = {plain.tokens[0][s]}}};
      absl::StatusOr<ForwardResult> out = model_->Forward(step, **cache, single_);
      ASSERT_TRUE(out.ok()) << out.status();
      const absl::Span<const float> row = Row(*out, 0);
      EXPECT_TRUE(AllClose(std::vector<float>(row.begin(), row.end()),
                           plain.rows[0][prompt_len + s], kSelfTol,
                           "child " + std::to_string(child) + " step " + std::to_string(s)));
    }
  }
}

TEST_P(GoldenTest, TensorParallelTwoEqualsOne) {
  const Trace tp1 = RunGreedy(*model_, single_, prompts_, 6);
  testing::ThreadGroup group(2);
  Trace tp2[2];
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      absl::StatusOr<std::unique_ptr<Model>> shard =
          Model::Load(GoldenModelDir(GetParam()), {.rank = r, .world_size = 2});
      ASSERT_TRUE(shard.ok()) << shard.status();
      // MLA: the latent cache is replicated (one stream per layer on every rank), heads split.
      EXPECT_EQ((*shard)->dims().kv_heads,
                model_->config().mla.enabled ? 1 : model_->config().num_kv_heads / 2);
      EXPECT_EQ((*shard)->dims().q_heads, model_->config().num_q_heads / 2);
      testing::ThreadGroupCollectives comm(&group, r);
      tp2[r] = RunGreedy(**shard, comm, prompts_, 6);
    });
  }
  for (std::thread& t : ranks) t.join();
  for (size_t i = 0; i < prompts_.size(); ++i) {
    EXPECT_EQ(tp2[0].tokens[i], tp1.tokens[i]);
    EXPECT_EQ(tp2[1].tokens[i], tp1.tokens[i]);
    for (size_t p = 0; p < tp1.rows[i].size(); ++p) {
      const std::string where = "seq " + std::to_string(i) + " position " + std::to_string(p);
      EXPECT_TRUE(AllClose(tp2[0].rows[i][p], tp1.rows[i][p], kSelfTol, where));
      // Both ranks hold the same logits bit for bit (they sample the same tokens).
      EXPECT_TRUE(AllClose(tp2[1].rows[i][p], tp2[0].rows[i][p], {.bitwise = true}, where));
    }
  }
}

// DMS checkpoints: the cache's live tokens per (layer, KV head) after the prompt and after
// the continuation, and the eviction rate, equal the reference's (computed from its α).
class DmsGoldenTest : public GoldenTest {};

TEST_P(DmsGoldenTest, LiveTokensAndEvictionRateMatchReference) {
  ASSERT_EQ(model_->shape().DefaultCachePolicy().kind, CachePolicyKind::kDms);
  for (size_t i = 0; i < cases_.size(); ++i) {
    ASSERT_TRUE(cases_[i].dms.has_value()) << "case " << i;
    const testing::GoldenDms& golden = *cases_[i].dms;
    absl::StatusOr<std::unique_ptr<KvCache>> cache = model_->shape().MakeCache(
        {.page_size = 3, .num_pages = 4096}, model_->shape().DefaultCachePolicy());
    ASSERT_TRUE(cache.ok()) << cache.status();
    ASSERT_TRUE((*cache)->AddSequence(0).ok());
    auto check_live = [&](const std::vector<std::vector<int64_t>>& expected,
                          const std::string& when) {
      for (int layer = 0; layer < model_->config().num_layers; ++layer) {
        for (int h = 0; h < model_->config().num_kv_heads; ++h) {
          EXPECT_EQ((*cache)->StreamLive(0, layer, h), expected[layer][h])
              << "case " << i << " " << when << " layer " << layer << " head " << h;
        }
      }
    };
    std::vector<SequenceChunk> step = {{.seq_id = 0, .tokens = cases_[i].prompt}};
    ASSERT_TRUE(model_->Forward(step, **cache, single_).ok());
    check_live(golden.live_after_prefill, "after prefill");
    for (size_t s = 0; s < cases_[i].greedy.size(); ++s) {
      step = {{.seq_id = 0, .tokens = {cases_[i].greedy[s]}}};
      ASSERT_TRUE(model_->Forward(step, **cache, single_).ok());
    }
    check_live(golden.live_final, "after decode");
    const SequenceStats stats = (*cache)->SequenceStatsOf(0);
    ASSERT_GT(stats.decided, 0);
    EXPECT_DOUBLE_EQ(static_cast<double>(stats.evicted) / stats.decided, golden.eviction_rate)
        << "case " << i;
  }
}

// dms_alpha_per "layer": KV head 0's decision serves every head (broadcast from rank 0 under
// TP), so all heads of a layer keep the same tokens; TP=2 equals TP=1.
TEST(DmsAlphaPerLayer, HeadZeroDecidesForEveryHead) {
  const std::string src = GoldenModelDir("qwen3_dms");
  const std::string dir = ::testing::TempDir() + "/rami_alpha_per_layer";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(src + "/model.safetensors", dir + "/model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  std::ifstream in(src + "/config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config["dms_alpha_per"] = "layer";
  std::ofstream(dir + "/config.json") << config.dump();

  const std::vector<std::vector<int32_t>> prompts = {
      {5, 9, 200, 17, 3, 3, 81, 44, 90, 12, 7, 150, 151, 2, 60, 61, 99, 4}, {8, 1, 2}};
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir, {});
  ASSERT_TRUE(model.ok()) << model.status();
  SingleRankCollectives single;
  const Trace tp1 = RunGreedy(**model, single, prompts, 10);
  absl::StatusOr<std::unique_ptr<KvCache>> cache = (*model)->shape().MakeCache(
      {.page_size = 2, .num_pages = 512}, (*model)->shape().DefaultCachePolicy());
  ASSERT_TRUE(cache.ok());
  ASSERT_TRUE((*cache)->AddSequence(0).ok());
  const std::vector<SequenceChunk> step = {{.seq_id = 0, .tokens = prompts[0]}};
  ASSERT_TRUE((*model)->Forward(step, **cache, single).ok());
  int64_t evicting_layers = 0;
  for (int layer = 0; layer < (*model)->config().num_layers; ++layer) {
    const int64_t head0 = (*cache)->StreamLive(0, layer, 0);
    evicting_layers += head0 < static_cast<int64_t>(prompts[0].size()) ? 1 : 0;
    for (int h = 1; h < (*model)->config().num_kv_heads; ++h) {
      EXPECT_EQ((*cache)->StreamLive(0, layer, h), head0) << "layer " << layer << " head " << h;
    }
  }
  EXPECT_GT(evicting_layers, 0);

  testing::ThreadGroup group(2);
  Trace tp2[2];
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      absl::StatusOr<std::unique_ptr<Model>> shard = Model::Load(dir, {.rank = r, .world_size = 2});
      ASSERT_TRUE(shard.ok()) << shard.status();
      testing::ThreadGroupCollectives comm(&group, r);
      tp2[r] = RunGreedy(**shard, comm, prompts, 10);
    });
  }
  for (std::thread& t : ranks) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(tp2[0].tokens[i], tp1.tokens[i]);
    EXPECT_EQ(tp2[1].tokens[i], tp1.tokens[i]);
    for (size_t p = 0; p < tp1.rows[i].size(); ++p) {
      EXPECT_TRUE(AllClose(tp2[1].rows[i][p], tp1.rows[i][p], kSelfTol, "tp2 vs tp1"));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DmsModels, DmsGoldenTest,
                         ::testing::Values("qwen3_dms", "qwen3_dms_adapter", "qwen3_dms_hd64",
                                           "qwen3_dms_adapter_hd64", "deepseek_v3_dms"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

INSTANTIATE_TEST_SUITE_P(
    Models, GoldenTest,
    ::testing::Values("llama", "llama3", "qwen2", "qwen3", "qwen3_yarn", "qwen3_dms",
                      "qwen3_dms_adapter", "deepseek_v2", "deepseek_v2_greedy", "deepseek_v3",
                      "deepseek_v3_fp8", "deepseek_v3_dms",
                      // head_dim 64 / 128: also the CUDA model test's
                      "llama3_hd128", "qwen2_hd64", "qwen3_dms_hd64", "qwen3_dms_adapter_hd64"),
    [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace rami
