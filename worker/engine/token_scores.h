// Prompt scoring on the backends' side: which rows of a step score which tokens (ScorePlan), in
// slices of at most kScoreSliceRows rows, and the scores of logits rows — each row's log-prob of
// the token after it and its top n (kernels/log_softmax_topn.h) — in ForwardResult::scored.
//
// Memory: a scoring step needs full-vocabulary logits for every scored row, [rows, vocab], which
// for a whole step (max_step_tokens rows) would dwarf every other step buffer. Backends compute
// them one slice at a time and keep only the [rows, 1 + n] scores, so scoring adds at most
// kScoreSliceRows rows of logits to a step, whatever the prompt's length.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "worker/engine/forward_backend.h"
#include "worker/engine/sampler.h"
#include "worker/engine/sequence_chunk.h"

namespace rami::engine {

// Rows a backend scores at once (the logits buffers a scoring slice needs).
inline constexpr int kScoreSliceRows = 64;

// A step's scored rows, chunk by chunk in the caller's chunk order.
struct ScorePlan {
  std::vector<int32_t> tokens;   // [rows] the row's token in the backend's step order
  std::vector<int32_t> targets;  // [rows] the token it scores: the next one of its chunk
  std::vector<int32_t> chunks;   // [rows] its chunk
  int top_n = 0;                 // the most top tokens any chunk asks for
  int rows() const { return static_cast<int>(tokens.size()); }
};

// `chunk_first[c]`: the step-order index of chunk c's first token (its tokens consecutive).
ScorePlan PlanScores(absl::Span<const SequenceChunk> chunks, absl::Span<const int32_t> chunk_first);

// Appends the scores of rows [begin, begin + n) of `plan` to result->scored (sized to the chunks
// here), each chunk's top cut to its score_top_n. Kernel outputs for those rows: the targets'
// log-probs [n], top ids and log-probs [n, plan.top_n] (ids −1 past the vocabulary).
void AppendScores(const ScorePlan& plan, absl::Span<const SequenceChunk> chunks, int begin, int n,
                  const float* target_logprobs, const int32_t* top_ids, const float* top_logprobs,
                  ForwardResult* result);

// Scores on the host: logits [targets.size(), vocab] fp32, one row per target.
std::vector<TokenScore> ScoreLogits(absl::Span<const float> logits, int vocab,
                                    absl::Span<const int32_t> targets, int top_n);

}  // namespace rami::engine
