// rami-generate: loads a Hugging Face checkpoint through the worker's own wiring (LoadShard, on
// the CPU or a CUDA device) and continues one or more prompts (token ids), printing the
// generated token ids — the prompts prefilled together in one step, then decoded together, by
// the same Engine, paged KV cache and sampler a worker runs. Greedy unless --temperature > 0.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/device.h"
#include "base/sampling_params.h"
#include "worker/collectives/rendezvous_store.h"
#include "worker/engine/shard.h"

ABSL_FLAG(std::string, model, "", "Hugging Face model directory (config.json + *.safetensors)");
ABSL_FLAG(std::string, prompt_ids, "",
          "prompt token ids, comma-separated; several prompts (a batch) separated by ';', "
          "e.g. --prompt_ids='1,2,3;4,5'");
ABSL_FLAG(int, max_tokens, 16, "tokens to generate per prompt");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:<n> (a build with the CUDA backend)");
ABSL_FLAG(std::string, dtype, "", "fp32 or bf16 (CUDA); empty: the device's default");
ABSL_FLAG(int, page_size, 16, "KV cache page size in tokens");
ABSL_FLAG(std::string, cache_policy, "",
          "dense, dms (DMS checkpoints) or window:<sinks>:<recent>; default: the checkpoint's");
ABSL_FLAG(int64_t, kv_cache_mib, 256, "CPU: the KV pool's size in MiB");
ABSL_FLAG(double, gpu_memory_utilization, 0.9,
          "CUDA: the share of the device's total memory to use (the KV pool gets the rest)");
ABSL_FLAG(float, temperature, 0.0f, "0 = greedy");
ABSL_FLAG(uint64_t, seed, 0, "prompt i samples with seed + i");

namespace {

struct Options {
  rami::engine::ShardOptions shard;
  std::vector<std::vector<int32_t>> prompts;
  int max_tokens = 0;
  rami::SamplingParams sampling;
};

absl::StatusOr<std::vector<std::vector<int32_t>>> ParsePrompts(const std::string& flag) {
  std::vector<std::vector<int32_t>> prompts;
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
    if (!ids.empty()) prompts.push_back(std::move(ids));
  }
  if (prompts.empty()) return absl::InvalidArgumentError("--prompt_ids: at least one prompt");
  return prompts;
}

absl::StatusOr<Options> ParseOptions() {
  Options o;
  o.shard.model_dir = absl::GetFlag(FLAGS_model);
  if (o.shard.model_dir.empty()) return absl::InvalidArgumentError("--model is required");
  absl::StatusOr<std::vector<std::vector<int32_t>>> prompts =
      ParsePrompts(absl::GetFlag(FLAGS_prompt_ids));
  if (!prompts.ok()) return prompts.status();
  o.prompts = *std::move(prompts);
  o.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  if (o.max_tokens < 1 || o.max_tokens > (1 << 20)) {
    return absl::InvalidArgumentError("--max_tokens: expected a value in [1, 1048576]");
  }
  absl::StatusOr<rami::Device> device = rami::ParseDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) return device.status();
  o.shard.device = *device;
  absl::StatusOr<rami::ComputeDType> dtype = rami::ParseComputeDType(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return dtype.status();
  o.shard.dtype = *dtype;
  o.shard.page_size = absl::GetFlag(FLAGS_page_size);
  o.shard.cache_policy = absl::GetFlag(FLAGS_cache_policy);
  const int64_t mib = absl::GetFlag(FLAGS_kv_cache_mib);
  if (mib < 1 || mib > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError("--kv_cache_mib: expected a value in [1, 2^30]");
  }
  o.shard.kv_cache_bytes = mib << 20;
  o.shard.gpu_memory_utilization = absl::GetFlag(FLAGS_gpu_memory_utilization);
  if (absl::Status s = o.shard.Validate(); !s.ok()) return s;
  o.sampling = {.temperature = absl::GetFlag(FLAGS_temperature), .seed = absl::GetFlag(FLAGS_seed)};
  if (absl::Status s = rami::ValidateSamplingParams(o.sampling, "--"); !s.ok()) return s;
  return o;
}

absl::Status Run(const Options& o) {
  const absl::Time load_start = absl::Now();
  rami::collectives::InMemoryRendezvousStore no_group;  // a world of one
  absl::StatusOr<rami::engine::LoadedShard> shard = rami::engine::LoadShard(o.shard, no_group);
  if (!shard.ok()) return shard.status();
  rami::engine::Engine& engine = *shard->engine;
  const rami::engine::ShardInfo& info = shard->info;
  std::printf("model: %s (%s, %d layers, cache policy %s) on %s in %s, loaded in %.1f ms\n",
              o.shard.model_dir.c_str(), engine.model().config().architecture_name.c_str(),
              info.num_layers, info.cache_policy.c_str(), rami::DeviceName(o.shard.device).c_str(),
              std::string(rami::ComputeDTypeName(info.dtype)).c_str(),
              absl::ToDoubleMilliseconds(absl::Now() - load_start));
  if (!info.memory_plan.empty()) std::printf("%s\n", info.memory_plan.c_str());
  if (info.host_anon_rss_bytes >= 0) {
    std::printf("host memory after load: %.1f MiB anonymous resident\n",
                info.host_anon_rss_bytes / double(1 << 20));
  }

  // Step 0 prefills every prompt and samples its first token; each later step decodes them all.
  rami::engine::StepPlan plan;
  std::vector<rami::kv::SeqId> ids;
  for (size_t i = 0; i < o.prompts.size(); ++i) {
    rami::SamplingParams sampling = o.sampling;
    sampling.seed += i;
    const rami::kv::SeqId id = static_cast<rami::kv::SeqId>(i);
    plan.prefills.push_back({.seq_id = id,
                             .tokens = o.prompts[i],
                             .create = true,
                             .sample = true,
                             .sampling = sampling,
                             .generated_tokens = 0,
                             .prompt_logprobs = false,
                             .copy_of = std::nullopt});
    ids.push_back(id);
  }
  std::vector<std::vector<int32_t>> generated(o.prompts.size());
  // A sequence the engine failed (NaN/Inf logits) stops there; the others go on.
  std::vector<std::string> failed(o.prompts.size());
  int failures = 0;
  const absl::Time gen_start = absl::Now();
  for (int n = 0; n < o.max_tokens && !ids.empty(); ++n) {
    plan.step_id = static_cast<uint64_t>(n);
    const rami::engine::StepOutcome outcome = engine.Execute(plan);
    if (!outcome.status.ok()) return outcome.status;
    for (const rami::engine::StepToken& t : outcome.tokens) {
      generated[static_cast<size_t>(t.seq_id)].push_back(t.sample.token_id);
    }
    for (const rami::engine::SequenceError& e : outcome.sequence_errors) {
      failed[static_cast<size_t>(e.seq_id)] = e.status.ToString();
      ++failures;
      std::erase(ids, e.seq_id);
    }
    plan.prefills.clear();
    plan.decodes = ids;  // the next step decodes the tokens just sampled
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - gen_start);
  int64_t tokens = 0;
  for (size_t i = 0; i < o.prompts.size(); ++i) {
    tokens += static_cast<int64_t>(generated[i].size());
    std::printf("prompt %zu: [%s]\n  generated: [%s]\n", i,
                absl::StrJoin(o.prompts[i], ", ").c_str(),
                absl::StrJoin(generated[i], ", ").c_str());
    if (!failed[i].empty()) std::printf("  failed: %s\n", failed[i].c_str());
  }
  std::printf("%lld tokens in %.3f s (%.1f tokens/s, %s)\n", static_cast<long long>(tokens),
              seconds, tokens / seconds, rami::DeviceName(o.shard.device).c_str());
  const rami::kv::CacheStats stats = engine.cache().Stats();
  std::printf("%zu x %d tokens in %.3f s (%.1f tokens/s, %s)\n", o.prompts.size(), o.max_tokens,
              seconds, o.prompts.size() * o.max_tokens / seconds,
              rami::DeviceName(o.shard.device).c_str());
  std::printf(
      "KV cache: %lld live of %lld logical tokens per stream summed, compression %.2fx, "
      "eviction rate %.3f, %d of %d pages in use\n",
      static_cast<long long>(stats.live_tokens),
      static_cast<long long>(stats.logical_tokens * info.num_layers * info.num_kv_heads),
      stats.compression_ratio, stats.eviction_rate, stats.pages_in_use, stats.num_pages);
  if (failures > 0) {
    return absl::InternalError(absl::StrCat(failures, " of ", o.prompts.size(),
                                            " sequences failed (see \"failed:\" above)"));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "rami-generate --model=DIR --prompt_ids='1,2,3;4,5' [--device=cpu|cuda:N] [--max_tokens=16]");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<Options> options = ParseOptions();
  absl::Status status = options.ok() ? Run(*options) : options.status();
  if (!status.ok()) {
    std::fprintf(stderr, "rami-generate: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
