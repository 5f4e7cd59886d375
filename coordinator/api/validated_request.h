// ValidatedRequest: a GenerateRequest after validation — every default resolved, every limit
// checked, the input turned into prompt token ids. Plain C++ (no protobuf), so the job and
// scheduler code and their tests never see the wire types.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "base/sampling_params.h"

namespace rami::api {

struct StoppingOptions {
  int32_t max_tokens = 0;         // resolved: >= 1, and prompt + max_tokens <= the context
  std::vector<std::string> stop;  // non-empty strings, valid UTF-8, client order
  // Sorted and unique: the client's stop_token_ids plus, unless ignore_eos, the model's EOS
  // ids. A branch ending on one reports EOS if it is in eos_token_ids, else STOP_TOKEN.
  std::vector<int32_t> stop_token_ids;
  std::vector<int32_t> eos_token_ids;  // the model's; empty with ignore_eos
  bool ignore_eos = false;
};

enum class AggregationPolicy { kNone, kMajorityVote, kWeightedVote, kBestLogprob };

// DeepConf-style early pruning (see inference.proto's EarlyPruning).
struct PruningOptions {
  bool enabled = false;
  int32_t warmup_branches = 4;   // M: branches that finish before a threshold is set
  int32_t window_tokens = 64;    // K: branch confidence = mean over its last K tokens
  double percentile = 10.0;      // p in [0, 100]: the threshold among the warm-up branches
  int32_t confidence_top_k = 5;  // token confidence = -mean of the top-k log-probs
  bool stop_when_decided = false;
};

struct AggregationOptions {
  AggregationPolicy policy = AggregationPolicy::kNone;
  // PCRE2 source (UTF + UCP) known to compile; "" = the default extractor, the last
  // \boxed{...} after any </think>. The answer is the last match's first group, if any.
  std::string extractor_regex;
  PruningOptions pruning;
};

struct ValidatedRequest {
  std::string model;                      // the served model's name
  std::vector<int32_t> prompt_token_ids;  // non-empty, inside the vocabulary
  int32_t n = 1;                          // branches, [1, max_n]; 0 with score_only
  // The public API defaults applied (temperature 1); branch i samples with seed + i (wrapping).
  SamplingParams sampling;
  StoppingOptions stopping;
  int32_t logprobs = 0;  // top-n log-probs per streamed token, [0, max_logprobs]
  AggregationOptions aggregation;
  int32_t priority = 0;                          // higher first; FCFS within a priority
  absl::Time deadline = absl::InfiniteFuture();  // in the future when validated
  bool stream_deltas = false;
  // Score the prompt with this many top alternatives per token, [0, max_logprobs].
  std::optional<int32_t> prompt_logprobs;
  bool score_only = false;  // with prompt_logprobs: no branches, stopping.max_tokens 0
  // Prefix caching: on unless the request skips it; entries are shared within the API key
  // and this salt; the prompt positions to snapshot at (sorted, unique, in [1, prompt size)).
  bool prefix_cache = true;
  std::string cache_salt;
  std::vector<int64_t> snapshot_points;
};

}  // namespace rami::api
