// rami-generate: loads a Hugging Face checkpoint on the CPU backend and continues one or more
// prompts (token ids) greedily, printing the generated token ids — a batch of sequences
// prefilled together, then decoded together, through the same paged KV cache the worker uses.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "worker/collectives/collectives.h"
#include "worker/cpu/model.h"
#include "worker/engine/sampler.h"

ABSL_FLAG(std::string, model, "", "Hugging Face model directory (config.json + *.safetensors)");
ABSL_FLAG(std::string, prompt_ids, "",
          "prompt token ids, comma-separated; several prompts (a batch) separated by ';', "
          "e.g. --prompt_ids='1,2,3;4,5'");
ABSL_FLAG(int, max_tokens, 16, "tokens to generate per prompt");
ABSL_FLAG(int, page_size, 16, "KV cache page size in tokens");
ABSL_FLAG(std::string, cache_policy, "",
          "dense, dms (DMS checkpoints) or window:<sinks>:<recent>; default: the checkpoint's");
ABSL_FLAG(int, num_pages, 4096,
          "KV cache pages in the pool (each page_size tokens x head_dim, for K and for V)");

namespace {

struct Options {
  std::string model;
  std::vector<std::vector<int32_t>> prompts;
  int max_tokens = 0;
  rami::kv::KvPoolConfig pool;
  std::string cache_policy;
};

absl::StatusOr<Options> ParseOptions() {
  Options o;
  o.model = absl::GetFlag(FLAGS_model);
  if (o.model.empty()) return absl::InvalidArgumentError("--model is required");
  const std::string flag = absl::GetFlag(FLAGS_prompt_ids);
  for (absl::string_view prompt : absl::StrSplit(flag, ';', absl::SkipWhitespace())) {
    std::vector<int32_t> ids;
    for (absl::string_view id : absl::StrSplit(prompt, ',', absl::SkipWhitespace())) {
      int32_t value = 0;
      if (!absl::SimpleAtoi(id, &value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--prompt_ids: \"", id, "\" is not a token id"));
      }
      ids.push_back(value);
    }
    if (!ids.empty()) o.prompts.push_back(std::move(ids));
  }
  if (o.prompts.empty()) return absl::InvalidArgumentError("--prompt_ids: at least one prompt");
  o.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  if (o.max_tokens < 1 || o.max_tokens > 1 << 20) {
    return absl::InvalidArgumentError("--max_tokens: expected a value in [1, 1048576]");
  }
  o.pool.page_size = absl::GetFlag(FLAGS_page_size);
  o.pool.num_pages = absl::GetFlag(FLAGS_num_pages);
  o.cache_policy = absl::GetFlag(FLAGS_cache_policy);
  if (absl::Status s = o.pool.Validate(); !s.ok()) return s;
  return o;
}

absl::Status Run(const Options& o) {
  const absl::Time load_start = absl::Now();
  absl::StatusOr<std::unique_ptr<rami::cpu::Model>> model = rami::cpu::Model::Load(o.model, {});
  if (!model.ok()) return model.status();
  rami::kv::CachePolicy policy = (*model)->shape().DefaultCachePolicy();
  if (!o.cache_policy.empty()) {
    absl::StatusOr<rami::kv::CachePolicy> parsed =
        rami::kv::CachePolicy::Parse(o.cache_policy, (*model)->config().dms.window_size);
    if (!parsed.ok()) return parsed.status();
    policy = *parsed;
  }
  absl::StatusOr<std::unique_ptr<rami::kv::KvCache>> made =
      (*model)->shape().MakeCache(o.pool, policy);
  if (!made.ok()) return made.status();
  std::unique_ptr<rami::kv::KvCache> cache = std::move(*made);
  rami::collectives::SingleRankCollectives comm;
  std::printf("model: %s (%s, %d layers, cache policy %s), loaded in %.1f ms\n", o.model.c_str(),
              (*model)->config().architecture_name.c_str(), (*model)->config().num_layers,
              cache->policy().ToString().c_str(),
              absl::ToDoubleMilliseconds(absl::Now() - load_start));

  std::vector<rami::engine::SequenceChunk> step;
  for (size_t i = 0; i < o.prompts.size(); ++i) {
    if (absl::Status s = cache->AddSequence(static_cast<rami::kv::SeqId>(i)); !s.ok()) return s;
    step.push_back({.seq_id = static_cast<rami::kv::SeqId>(i), .tokens = o.prompts[i]});
  }
  std::vector<std::vector<int32_t>> generated(o.prompts.size());
  const absl::Time gen_start = absl::Now();
  for (int n = 0; n < o.max_tokens; ++n) {
    absl::StatusOr<rami::engine::ForwardResult> out = (*model)->Forward(step, *cache, comm);
    if (!out.ok()) return out.status();
    std::vector<rami::engine::SampleRequest> greedy(step.size());  // temperature 0
    for (size_t i = 0; i < step.size(); ++i) greedy[i].row = out->first_row[i];
    absl::StatusOr<std::vector<rami::engine::SampledToken>> sampled =
        rami::engine::Sample(out->logits, out->vocab_size, greedy);
    if (!sampled.ok()) return sampled.status();
    for (size_t i = 0; i < step.size(); ++i) {
      const int32_t token = (*sampled)[i].token_id;
      generated[i].push_back(token);
      step[i].tokens = {token};  // next step decodes it
    }
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - gen_start);
  for (size_t i = 0; i < o.prompts.size(); ++i) {
    std::printf("prompt %zu: [%s]\n  generated: [%s]\n", i,
                absl::StrJoin(o.prompts[i], ", ").c_str(),
                absl::StrJoin(generated[i], ", ").c_str());
  }
  const rami::kv::CacheStats stats = cache->Stats();
  std::printf("%zu x %d tokens in %.3f s (%.1f tokens/s, CPU backend)\n", o.prompts.size(),
              o.max_tokens, seconds, o.prompts.size() * o.max_tokens / seconds);
  std::printf(
      "KV cache: %lld live of %lld logical tokens per stream summed, compression %.2fx, "
      "eviction rate %.3f, %d of %d pages in use\n",
      static_cast<long long>(stats.live_tokens),
      static_cast<long long>(stats.logical_tokens * (*model)->config().num_layers *
                             (*model)->dims().kv_heads),
      stats.compression_ratio, stats.eviction_rate, stats.pages_in_use, stats.num_pages);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Greedy generation from a Hugging Face checkpoint (CPU backend).");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<Options> options = ParseOptions();
  absl::Status status = options.ok() ? Run(*options) : options.status();
  if (!status.ok()) {
    std::fprintf(stderr, "rami-generate: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
