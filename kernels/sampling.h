// Token sampling from a batch of logits rows: greedy, temperature, top-k, top-p, min-p, with a
// counter-based random stream per (seed, token index), plus the raw log-probs of the chosen
// token and of the top-n alternatives. The CPU twin is the reference for the CUDA kernel.
//
// Semantics of one row (x = logits[vocab], everything below is deterministic given x and the
// row's parameters):
//
//  * Canonical order: logit descending, ties by ascending token id. It depends on x only (not
//    on the temperature), and every filter below keeps a prefix of it.
//  * Greedy when temperature == 0 or top_k == 1: the first token of the canonical order (the
//    argmax, lowest id on ties, as torch.argmax). No random number is drawn.
//  * Otherwise w_i = exp((x_i - max x) / T), so p_i = w_i / Σ w and w = 1 for the argmax.
//    Filters, in this order, each keeping a prefix of the canonical order:
//      1. top-k (k > 0): the first k tokens. Exactly k: ties at the boundary go to lower ids.
//      2. top-p (0 < top_p < 1): the shortest prefix of the top-k set whose mass reaches
//         top_p of the top-k set's mass (top-p sees the top-k set renormalised); at least one.
//      3. min-p (min_p > 0): the tokens with p_i ≥ min_p · p_max, i.e. w_i ≥ min_p.
//    Off values: top_k 0, top_p 0 or 1, min_p 0 (as in proto/rami/worker/v1/worker.proto).
//  * Draw: u ∈ [0, 1) is PhiloxUnitDouble(out[0], out[1]) of
//    Philox4x32-10(key = {seed_lo, seed_hi}, counter = {index_lo, index_hi, 0, 0}), 53 bits.
//    The chosen token is the first kept token, in canonical order, whose cumulative w
//    exceeds u · (Σ w over the kept set); a token with w = 0 is never chosen. Sums are in
//    double.
//  * Log-probs are those of the RAW model distribution, log_softmax(x) at temperature 1,
//    before any filter: the chosen token's, and the `num_logprobs` best in canonical order.
//    This is what confidence measures (DeepConf's token confidence) need, and it does not
//    change with the sampling knobs.
//
// Compared with vLLM's v1 sampler (vllm/v1/sample/sampler.py, ops/topk_topp_sampler.py):
//  * Same: temperature before the filters; top-p on the top-k-renormalised distribution with
//    at least one token kept; min-p relative to the top probability of the temperature-scaled
//    distribution; log-probs default to raw (logprobs_mode "raw_logprobs").
//  * Order: vLLM applies min-p first, then top-k and top-p. Min-p commutes with top-k (both
//    keep a prefix, and the ratio p_i / p_max does not change with renormalisation), but not
//    with top-p: in vLLM top-p measures mass within the min-p set, here within the top-k set.
//    So with both top-p and min-p on, vLLM keeps a subset of what rami keeps.
//  * Ties: vLLM's top-k keeps every token tied with the k-th logit (possibly more than k) and
//    its sort breaks other ties arbitrarily; rami keeps exactly k and breaks ties by id.
//  * Greedy: vLLM treats temperature < 1e-5 as greedy; rami only temperature 0 (and top_k 1).
//    Small positive temperatures are safe here because x - max ≤ 0 before the division.
//  * Draw: vLLM samples by the exponential race argmax(p / q), q ~ Exp(1) per token, from a
//    torch.Generator; rami uses one uniform per token and the inverse CDF, so a sequence's
//    stream is keyed by (seed, index) alone, never by engine step or batch position.
//
// A row with no distribution — a NaN or +Inf logit, or no finite logit (a broken checkpoint or
// an overflow upstream) — is flagged, not sampled: token -1, logprob NaN, top_ids -1 and
// top_logprobs -inf. The flag is a function of the row alone, so tensor-parallel ranks holding
// the same gathered logits flag the same rows; the host (worker/engine/sampler.h) turns it into
// that sequence's error.
//
// Preconditions (checked by the host wrapper, worker/engine/sampler.h): vocab ≥ 1;
// logits_row[r] is a row of logits; temperature finite and ≥ 0; top_k ≥ 0; top_p, min_p ∈
// [0, 1]; 0 ≤ num_logprobs[r] ≤ max_logprobs ≤ kMaxLogprobs.
#pragma once

#include <cstdint>

#include "kernels/philox.h"

namespace rami::kernels {

inline constexpr int kMaxLogprobs = 20;

// One output row per token to sample; several may read the same logits row (the children of
// a fork sample their first tokens from the root's last logits, each with its own seed).
struct SampleParams {
  const float* logits = nullptr;          // [logits_rows, vocab] fp32
  const int32_t* logits_row = nullptr;    // [rows] logits row of output row r; null: row r
  const float* temperature = nullptr;     // [rows]; 0 = greedy
  const int32_t* top_k = nullptr;         // [rows]; 0 = off
  const float* top_p = nullptr;           // [rows]; 0 or 1 = off
  const float* min_p = nullptr;           // [rows]; 0 = off
  const uint64_t* seed = nullptr;         // [rows]; the Philox key
  const uint64_t* index = nullptr;        // [rows]; token index among the sequence's generated
                                          // tokens: the Philox counter (never an engine step)
  const int32_t* num_logprobs = nullptr;  // [rows]; top-n alternatives wanted, 0..max_logprobs

  // Outputs. top_ids / top_logprobs hold min(num_logprobs[r], vocab) entries per row, best
  // first, then -1 / -inf up to max_logprobs; both may be null when max_logprobs == 0.
  int32_t* token = nullptr;       // [rows] the chosen token id; -1: the row has no distribution
  float* logprob = nullptr;       // [rows] raw log-prob of the chosen token
  int32_t* top_ids = nullptr;     // [rows, max_logprobs]
  float* top_logprobs = nullptr;  // [rows, max_logprobs]

  int rows = 0;  // output rows (tokens to sample)
  int vocab = 0;
  int max_logprobs = 0;  // row stride of top_ids / top_logprobs, ≤ kMaxLogprobs
};

// The uniform draw of token `index` of the stream `seed` (see the header comment).
RAMI_HOST_DEVICE inline double SampleUniform(uint64_t seed, uint64_t index) {
  const PhiloxKey key{{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}};
  const PhiloxCounter ctr{
      {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0u, 0u}};
  const PhiloxCounter out = Philox4x32(ctr, key);
  return PhiloxUnitDouble(out.v[0], out.v[1]);
}

void SampleCpu(const SampleParams& p);

}  // namespace rami::kernels
