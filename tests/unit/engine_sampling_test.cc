// The Engine with a backend that samples where its logits are (the CUDA backend's contract,
// worker/engine/forward_backend.h): decode chunks carry their sequence's sample request
// (parameters, seed, token index), the backend answers ForwardResult::sampled and leaves their rows
// out, and the Engine records those tokens. Against the same plans on the plain CPU Model (the
// Engine samples on the host): the very same tokens, log-probs and top-n every step — prefill
// samples, fork children and decodes, greedy and random parameters alike.
//
// The sampling backend is a test double: the CPU Model plus the host sampler applied to the
// requests the Engine put in the chunks, with the rows removed as the CUDA backend removes them.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cpu/model.h"
#include "worker/engine/engine.h"
#include "worker/engine/sampler.h"

namespace rami {

using engine::ModelShape;

using checkpoint::ModelConfig;
using collectives::Collectives;
using collectives::SingleRankCollectives;
using cpu::Model;
using engine::Engine;
using engine::ForwardBackend;
using engine::ForwardResult;
using engine::Sample;
using engine::SampledToken;
using engine::SampleRequest;
using engine::SequenceChunk;
using engine::StepOutcome;
using engine::StepPlan;
using engine::StepToken;
using kv::KvCache;

namespace {

class SamplingBackend : public ForwardBackend {
 public:
  explicit SamplingBackend(std::unique_ptr<Model> model) : model_(std::move(model)) {}
  const ModelShape& shape() const override { return model_->shape(); }
  absl::StatusOr<ForwardResult> RunReserved(absl::Span<const SequenceChunk> chunks, KvCache& cache,
                                            Collectives& comm) const override {
    absl::StatusOr<ForwardResult> full = model_->RunReserved(chunks, cache, comm);
    if (!full.ok()) return full;
    const int vocab = full->vocab_size;
    ForwardResult out;
    out.vocab_size = vocab;
    out.sampled.resize(chunks.size());
    for (size_t c = 0; c < chunks.size(); ++c) {
      const int rows = chunks[c].all_logits ? static_cast<int>(chunks[c].tokens.size()) : 1;
      const float* first = full->logits.data() + static_cast<size_t>(full->first_row[c]) * vocab;
      if (chunks[c].sample.has_value() && !chunks[c].all_logits) {
        SampleRequest request = *chunks[c].sample;
        request.row = 0;
        absl::StatusOr<std::vector<SampledToken>> token =
            Sample({first, static_cast<size_t>(vocab)}, vocab, {&request, 1});
        if (!token.ok()) return token.status();
        out.sampled[c] = std::move((*token)[0]);
        out.first_row.push_back(-1);
        ++samples_;
        continue;
      }
      out.first_row.push_back(static_cast<int32_t>(out.logits.size() / vocab));
      out.logits.insert(out.logits.end(), first, first + static_cast<size_t>(rows) * vocab);
    }
    return out;
  }
  int samples() const { return samples_; }

 private:
  std::unique_ptr<Model> model_;
  mutable int samples_ = 0;
};

std::unique_ptr<Engine> MakeEngine(std::unique_ptr<ForwardBackend> backend, const Model& model) {
  absl::StatusOr<std::unique_ptr<KvCache>> cache = model.shape().MakeCache(
      {.page_size = 4, .num_pages = 512}, model.shape().DefaultCachePolicy());
  EXPECT_TRUE(cache.ok()) << cache.status();
  return std::make_unique<Engine>(std::move(backend), std::move(*cache),
                                  std::make_unique<SingleRankCollectives>());
}

TEST(EngineSampling, BackendSamplesEqualHostSamples) {
  const std::string dir = std::string(RAMI_SOURCE_DIR) + "/tests/golden/models/qwen3_dms";
  absl::StatusOr<std::unique_ptr<Model>> a = Model::Load(dir, {});
  absl::StatusOr<std::unique_ptr<Model>> b = Model::Load(dir, {});
  ASSERT_TRUE(a.ok() && b.ok()) << a.status();
  const Model& shape = **a;
  auto sampling = std::make_unique<SamplingBackend>(std::move(*b));
  const SamplingBackend* sampler = sampling.get();
  std::unique_ptr<Engine> host = MakeEngine(std::move(*a), shape);
  std::unique_ptr<Engine> backend = MakeEngine(std::move(sampling), shape);

  const SamplingParams random{
      .temperature = 0.8f, .top_k = 40, .top_p = 0.9f, .seed = 11, .logprobs = 3};
  const SamplingParams greedy{.logprobs = 1};
  std::vector<StepPlan> plans(13);
  // Step 0: two prompts (sampled at once), the first one forked into three branches.
  plans[0].prefills.push_back({.seq_id = 1,
                               .tokens = {5, 17, 99, 3, 42, 7},
                               .create = true,
                               .sample = true,
                               .sampling = random,
                               .generated_tokens = 0,
                               .prompt_logprobs = false,
                               .copy_of = std::nullopt});
  plans[0].prefills.push_back({.seq_id = 2,
                               .tokens = {8, 1, 2},
                               .create = true,
                               .sample = true,
                               .sampling = greedy,
                               .generated_tokens = 0,
                               .prompt_logprobs = false,
                               .copy_of = std::nullopt});
  plans[0].forks.push_back(
      {.parent = 1,
       .children = {{.seq_id = 10, .sampling = random},
                    {.seq_id = 11, .sampling = {.temperature = 1.2f, .min_p = 0.05f, .seed = 7}},
                    {.seq_id = 12, .sampling = greedy}}});
  for (uint64_t step = 1; step < plans.size(); ++step) {
    plans[step].step_id = step;
    plans[step].decodes = {1, 2, 10, 11, 12};
  }
  for (const StepPlan& plan : plans) {
    const StepOutcome want = host->Execute(plan);
    const StepOutcome got = backend->Execute(plan);
    ASSERT_TRUE(want.status.ok()) << want.status;
    ASSERT_TRUE(got.status.ok()) << got.status;
    ASSERT_EQ(got.tokens.size(), want.tokens.size()) << "step " << plan.step_id;
    for (size_t i = 0; i < want.tokens.size(); ++i) {
      const StepToken& g = got.tokens[i];
      const StepToken& w = want.tokens[i];
      const std::string where =
          "step " + std::to_string(plan.step_id) + " seq " + std::to_string(w.seq_id);
      EXPECT_EQ(g.seq_id, w.seq_id) << where;
      EXPECT_EQ(g.index, w.index) << where;
      EXPECT_EQ(g.sample.token_id, w.sample.token_id) << where;
      EXPECT_EQ(g.sample.logprob, w.sample.logprob) << where;
      ASSERT_EQ(g.sample.top.size(), w.sample.top.size()) << where;
      for (size_t j = 0; j < w.sample.top.size(); ++j) {
        EXPECT_EQ(g.sample.top[j].token_id, w.sample.top[j].token_id) << where;
      }
    }
  }
  // Every decode token went through the backend's sampler (prefills and forks did not).
  EXPECT_EQ(sampler->samples(), 12 * 5);
}

}  // namespace
}  // namespace rami
