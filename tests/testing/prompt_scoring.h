// ScorePromptInChunks: drives an Engine through a prompt `chunk` tokens a step with
// prompt_logprobs on, next to an unscored sequence prefilling in the same steps, and returns
// the prompt's scored tokens in order. Shared by the CPU and CUDA prompt log-prob tests.
#pragma once

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"
#include "worker/engine/engine.h"

namespace rami::testing {

// `top_n`: the alternatives per scored token; `scored_first`: the scored sequence comes first
// in each step's prefills (else second: the backends must not depend on the order).
inline std::vector<engine::PromptTokenLogprob> ScorePromptInChunks(
    engine::Engine& engine, const std::vector<int32_t>& prompt, size_t chunk, int top_n,
    bool scored_first) {
  std::vector<engine::PromptTokenLogprob> scores;
  for (size_t first = 0, step = 0; first < prompt.size(); first += chunk, ++step) {
    const size_t n = std::min(chunk, prompt.size() - first);
    engine::StepPlan plan{
        .step_id = step, .frees = {}, .prefills = {}, .decodes = {}, .forks = {}, .snapshots = {}};
    engine::PlanPrefill scored{.seq_id = 1,
                               .tokens = {prompt.begin() + first, prompt.begin() + first + n},
                               .create = first == 0,
                               .sample = false,
                               .sampling = std::nullopt,
                               .generated_tokens = 0,
                               .prompt_logprobs = true,
                               .copy_of = std::nullopt};
    if (first == 0) scored.sampling = SamplingParams{.logprobs = top_n};
    engine::PlanPrefill other = scored;
    other.seq_id = 2;
    other.tokens.assign(n, 7);
    other.prompt_logprobs = false;
    plan.prefills = scored_first ? std::vector{scored, other} : std::vector{other, scored};
    const engine::StepOutcome out = engine.Execute(plan);
    EXPECT_TRUE(out.status.ok()) << out.status;
    if (!out.status.ok() || out.prompt_logprobs.size() != 1) {
      ADD_FAILURE() << "step " << step << ": no prompt log-probs";
      break;
    }
    EXPECT_EQ(out.prompt_logprobs[0].seq_id, 1);
    scores.insert(scores.end(), out.prompt_logprobs[0].tokens.begin(),
                  out.prompt_logprobs[0].tokens.end());
  }
  return scores;
}

}  // namespace rami::testing
