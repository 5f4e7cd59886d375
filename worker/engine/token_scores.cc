// Score plans, and host scoring with the CPU log-softmax top-n kernel.
#include "worker/engine/token_scores.h"

#include <algorithm>

#include "base/check.h"
#include "kernels/log_softmax_topn.h"

namespace rami::engine {

ScorePlan PlanScores(absl::Span<const SequenceChunk> chunks,
                     absl::Span<const int32_t> chunk_first) {
  ScorePlan plan;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const SequenceChunk& chunk = chunks[c];
    if (chunk.score_top_n < 0) continue;
    plan.top_n = std::max(plan.top_n, chunk.score_top_n);
    // Row i (token i's logits) scores token i + 1; the last row scores nothing here.
    for (size_t i = 0; i + 1 < chunk.tokens.size(); ++i) {
      plan.tokens.push_back(chunk_first[c] + static_cast<int32_t>(i));
      plan.targets.push_back(chunk.tokens[i + 1]);
      plan.chunks.push_back(static_cast<int32_t>(c));
    }
  }
  return plan;
}

void AppendScores(const ScorePlan& plan, absl::Span<const SequenceChunk> chunks, int begin, int n,
                  const float* target_logprobs, const int32_t* top_ids, const float* top_logprobs,
                  ForwardResult* result) {
  result->scored.resize(chunks.size());
  for (int i = 0; i < n; ++i) {
    const int row = begin + i;
    const SequenceChunk& chunk = chunks[plan.chunks[row]];
    TokenScore score{.token_id = plan.targets[row], .logprob = target_logprobs[i], .top = {}};
    for (int j = 0; j < chunk.score_top_n; ++j) {
      const size_t at = static_cast<size_t>(i) * plan.top_n + j;
      if (top_ids[at] < 0) break;  // a vocabulary smaller than n
      score.top.push_back({top_ids[at], top_logprobs[at]});
    }
    result->scored[plan.chunks[row]].push_back(std::move(score));
  }
}

std::vector<TokenScore> ScoreLogits(absl::Span<const float> logits, int vocab,
                                    absl::Span<const int32_t> targets, int top_n) {
  const int rows = static_cast<int>(targets.size());
  RAMI_CHECK(logits.size() == static_cast<size_t>(rows) * vocab, "%d rows of %d logits", rows,
             vocab);
  std::vector<float> target_lp(rows);
  std::vector<int32_t> top_ids(static_cast<size_t>(rows) * top_n);
  std::vector<float> top_lp(top_ids.size());
  kernels::LogSoftmaxTopNCpu({.logits = logits.data(),
                              .top_ids = top_ids.data(),
                              .top_logprobs = top_lp.data(),
                              .rows = rows,
                              .cols = vocab,
                              .top_n = top_n,
                              .targets = targets.data(),
                              .target_logprobs = target_lp.data()});
  std::vector<TokenScore> out(rows);
  for (int r = 0; r < rows; ++r) {
    out[r] = {.token_id = targets[r], .logprob = target_lp[r], .top = {}};
    for (int j = 0; j < top_n; ++j) {
      const size_t at = static_cast<size_t>(r) * top_n + j;
      if (top_ids[at] < 0) break;
      out[r].top.push_back({top_ids[at], top_lp[at]});
    }
  }
  return out;
}

}  // namespace rami::engine
