// The engine rows of `rami-bench decode`: a CudaModel per policy (an engine::ModelShape of the
// bench's Qwen3 shape + RandomDeviceWeights), cache states of `context` tokens per sequence
// built through the KvCache API (no prefill: the device pool's contents stay zero, only the
// timing matters), then decode steps through Reserve + RunReserved, timed by wall clock.
#include "tools/bench_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/bench_cache_state.h"
#include "tools/bench_model_config.h"
#include "tools/bench_weights.h"
#include "worker/cuda/cuda_model.h"
#include "worker/cuda/device_weights.h"
#include "worker/engine/model_shape.h"
#include "worker/engine/sampler.h"
#include "worker/kv/kv_cache.h"

namespace rami::bench {

using checkpoint::ModelConfig;
using checkpoint::ShardDims;
using collectives::SingleRankCollectives;
using cuda::CudaModel;
using engine::DecodeGraphStats;
using engine::ForwardResult;
using engine::SampledToken;
using engine::SampleRequest;
using engine::SequenceChunk;
using kv::CachePolicy;
using kv::KvCache;
using kv::SeqId;
using kv::SequenceStats;

namespace {

using cuda::CudaModel;
using Clock = std::chrono::steady_clock;

constexpr int kWarmupSteps = 3;      // a graph bucket's first step is eager, the second captured
constexpr int kMaxSequences = 1024;  // at the longest context: as many as fit, at most this
constexpr uint64_t kWeightSeed = 1;
constexpr kernels::DeviceDType kDtype = kernels::DeviceDType::kBF16;

// Prints a failed status with what failed and returns 1 from the enclosing int function.
#define RAMI_ENGINE_OK(expr)                                             \
  do {                                                                   \
    const absl::Status rami_engine_s_ = (expr);                          \
    if (!rami_engine_s_.ok()) {                                          \
      std::fprintf(stderr, "rami-bench decode: engine: %s: %s\n", #expr, \
                   rami_engine_s_.ToString().c_str());                   \
      return 1;                                                          \
    }                                                                    \
  } while (0)

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

absl::StatusOr<ModelConfig> BenchConfig(const DecodeBenchOptions& o, bool dms) {
  return BenchModelConfig(o, *std::max_element(o.contexts.begin(), o.contexts.end()), dms);
}

// The cache's counters of a batch, summed over its sequences.
struct BatchTotals {
  int64_t live = 0;  // live tokens over every (sequence, layer, KV head) stream
  int64_t decided = 0;
  int64_t evicted = 0;
};

BatchTotals TotalsOf(const KvCache& cache, absl::Span<const SeqId> ids) {
  BatchTotals t;
  for (SeqId id : ids) {
    const SequenceStats s = cache.SequenceStatsOf(id);
    t.live += s.live_sum;
    t.decided += s.decided;
    t.evicted += s.evicted;
  }
  return t;
}

struct RowResult {
  double ms = 0;          // mean wall clock of RunReserved per step
  double min_ms = 0;      // the fastest step
  double kv_bytes = 0;    // live K + V bytes the step's attention reads (mean of first and last)
  double alpha = -1;      // eviction rate of the timed steps' own decisions (-1: none taken)
  int64_t nonfinite = 0;  // NaN/Inf logits of the check step
  double sampled_on_device = 0;  // fraction of the timed steps' tokens the backend sampled
  DecodeGraphStats graphs;       // during the timed steps
};

// Runs warm-up then `steps` decode steps of one token per sequence of `ids`, each with a greedy
// sample request as the Engine's decode chunks carry (the CUDA backend samples them on the
// device; a backend that does not returns the logits rows), then one untimed step without
// requests whose logits rows come back to the host, to check that they are finite.
absl::StatusOr<RowResult> TimeSteps(const CudaModel& model, KvCache& cache,
                                    absl::Span<const SeqId> ids, int steps) {
  const ModelConfig& c = model.config();
  const size_t vocab = static_cast<size_t>(c.vocab_size);
  std::vector<SequenceChunk> chunks;
  for (SeqId id : ids) {
    SequenceChunk chunk;  // one decode token
    chunk.seq_id = id;
    chunk.tokens = {static_cast<int32_t>((id * 7919) % c.vocab_size)};
    SampleRequest greedy;  // temperature 0
    greedy.params.seed = static_cast<uint64_t>(id);
    chunk.sample = greedy;
    chunks.push_back(std::move(chunk));
  }
  SingleRankCollectives comm;
  uint64_t index = 0;     // the sequences' generated-token index, for the sample requests
  int64_t on_device = 0;  // tokens the backend sampled, over the timed steps
  ForwardResult last;
  auto step = [&]() -> absl::StatusOr<double> {
    for (SequenceChunk& chunk : chunks) {
      if (chunk.sample.has_value()) chunk.sample->index = index;
    }
    ++index;
    RAMI_RETURN_IF_ERROR(model.Reserve(chunks, cache));
    const Clock::time_point start = Clock::now();
    absl::StatusOr<ForwardResult> result = model.RunReserved(chunks, cache, comm);
    const double ms = Seconds(start) * 1e3;
    if (!result.ok()) return result.status();
    // Every chunk gets a sampled token or a logits row.
    size_t sampled = 0;
    for (const std::optional<SampledToken>& token : result->sampled) {
      if (!token.has_value()) continue;
      if (token->token_id < 0 || token->token_id >= c.vocab_size) {
        return absl::InternalError(absl::StrCat("engine step: sampled token ", token->token_id));
      }
      ++sampled;
    }
    if (result->logits.size() != (ids.size() - sampled) * vocab) {
      return absl::InternalError(absl::StrCat("engine step: ", result->logits.size(),
                                              " logits and ", sampled, " sampled tokens for ",
                                              ids.size(), " sequences"));
    }
    on_device += static_cast<int64_t>(sampled);
    last = *std::move(result);
    return ms;
  };
  for (int i = 0; i < kWarmupSteps; ++i) RAMI_RETURN_IF_ERROR(step().status());
  on_device = 0;
  const BatchTotals before = TotalsOf(cache, ids);
  const DecodeGraphStats graphs = model.graph_stats();
  RowResult r;
  r.min_ms = 1e300;
  for (int i = 0; i < steps; ++i) {
    RAMI_ASSIGN_OR_RETURN(const double ms, step());
    r.ms += ms / steps;
    r.min_ms = std::min(r.min_ms, ms);
  }
  const BatchTotals after = TotalsOf(cache, ids);
  const DecodeGraphStats now = model.graph_stats();
  r.graphs = {.eager = now.eager - graphs.eager,
              .captures = now.captures - graphs.captures,
              .replays = now.replays - graphs.replays,
              .failed = now.failed - graphs.failed};
  r.sampled_on_device = static_cast<double>(on_device) / (static_cast<double>(steps) * ids.size());
  const double row_bytes = 2.0 * c.head_dim * kernels::DeviceDTypeSize(kDtype);  // K and V
  r.kv_bytes = 0.5 * static_cast<double>(before.live + after.live) * row_bytes;
  if (after.decided > before.decided) {
    r.alpha = static_cast<double>(after.evicted - before.evicted) /
              static_cast<double>(after.decided - before.decided);
  }
  // The check step: every logits row to the host.
  for (SequenceChunk& chunk : chunks) chunk.sample.reset();
  RAMI_RETURN_IF_ERROR(step().status());
  for (float v : last.logits) r.nonfinite += std::isfinite(v) ? 0 : 1;
  return r;
}

// Frees a context's sequences and tells the model, whose device tables drop them next step.
absl::Status FreeSequences(const CudaModel& model, KvCache& cache, const std::vector<SeqId>& ids) {
  for (SeqId id : ids) RAMI_RETURN_IF_ERROR(cache.FreeSequence(id));
  model.CacheChanged(ids);
  return absl::OkStatus();
}

// The largest batch each policy fits at the longest context, and its tokens/s.
struct Largest {
  int batch = 0;
  double tokens_per_s = 0;
  double pool_gib = 0;
};

// Every row of one policy, the longest context first (the equal-budget row comes early when
// time is short); stops at `deadline`. Returns 0, or 1 after printing what failed.
int RunPolicy(const DecodeBenchOptions& o, bool dms, double copy_gbs, Clock::time_point deadline,
              Largest* largest) {
  const char* name = dms ? "dms" : "dense";
  const Clock::time_point made = Clock::now();
  absl::StatusOr<ModelConfig> config = BenchConfig(o, dms);
  RAMI_ENGINE_OK(config.status());
  absl::StatusOr<engine::ModelShape> shape = engine::ModelShape::Make(*config, {});
  RAMI_ENGINE_OK(shape.status());
  const ShardDims dims = shape->dims();
  absl::StatusOr<std::unique_ptr<cuda::DeviceWeights>> weights =
      RandomDeviceWeights(*config, dims, kDtype, kWeightSeed);
  RAMI_ENGINE_OK(weights.status());
  absl::StatusOr<std::unique_ptr<CudaModel>> made_model =
      CudaModel::Create(*std::move(shape), *std::move(weights), {.dtype = kDtype, .world_size = 1});
  RAMI_ENGINE_OK(made_model.status());
  const std::unique_ptr<CudaModel> model = *std::move(made_model);
  const CachePolicy policy = dms ? CachePolicy::Dms(o.dms_window) : CachePolicy::Dense();
  // The model's cache sizes the device pool; the steps run on a twin of it with the same page
  // geometry and policy, built without the model's copy log: the synthetic states' millions of
  // window→kept promotions would otherwise be replayed (and cut into independent launches on
  // the host) at the first step. The device pool's contents do not matter here.
  absl::StatusOr<std::unique_ptr<KvCache>> own = model->MakeCache(
      policy, {.page_size = o.page_size,
               .utilization = o.engine_memory_utilization,
               .limits = {.max_step_tokens = kMaxSequences, .max_step_sequences = kMaxSequences}});
  RAMI_ENGINE_OK(own.status());
  const int num_pages = (*own)->pool().num_pages();
  absl::StatusOr<std::unique_ptr<KvCache>> twin = model->shape().MakeCache(
      {.page_size = o.page_size, .num_pages = num_pages, .allocate_storage = false}, policy);
  RAMI_ENGINE_OK(twin.status());
  KvCache& cache = **twin;
  const double pool_gib = model->pool_bytes() / double(1 << 30);
  // Weights a step reads: all but the embedding table (of which it reads `batch` rows).
  const double weight_read = static_cast<double>(model->weight_bytes()) -
                             double(dims.vocab) * o.hidden * kernels::DeviceDTypeSize(kDtype);
  std::printf(
      "\n%s: %d layers, random bf16 weights %.2f GB made on the device; pool %.1f GiB = %d pages "
      "of %d tokens, ready in %.1f s\n  %s\n",
      name, o.num_layers, model->weight_bytes() / 1e9, pool_gib, num_pages, o.page_size,
      Seconds(made), model->memory_plan().c_str());
  std::fflush(stdout);

  const int longest = *std::max_element(o.contexts.begin(), o.contexts.end());
  const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());
  // Pages a sequence may gain over every step it takes at one context (warm-up included): a
  // window page and a kept page per page_size steps, per stream.
  const int64_t rows = static_cast<int64_t>(o.batches.size()) + 1;
  const int64_t growth = int64_t{o.num_layers} * dims.kv_heads * 2 *
                         ((rows * (kWarmupSteps + o.engine_steps + 1)) / o.page_size + 2);
  std::vector<int> contexts = o.contexts;
  std::sort(contexts.rbegin(), contexts.rend());
  SeqId next_id = 1;
  bool out_of_time = false;
  for (int context : contexts) {
    if (Clock::now() >= deadline) {
      out_of_time = true;
      break;
    }
    const Clock::time_point build = Clock::now();
    const int target = context == longest ? std::max(kMaxSequences, max_batch) : max_batch;
    absl::StatusOr<SyntheticSequences> built = BuildSyntheticSequences(
        cache, context, target, growth, next_id, dms ? o.dms_rate : 0, deadline);
    RAMI_ENGINE_OK(built.status());
    const std::vector<SeqId>& ids = built->ids;
    next_id += static_cast<SeqId>(ids.size());
    const int fits = static_cast<int>(ids.size());
    // The largest batch that fits (the equal-budget row): only when the pool, not the time
    // budget or the target, ended the build.
    const bool largest_fits = context == longest && built->pool_full;
    const BatchTotals all = TotalsOf(cache, ids);
    std::printf(
        "  context %d: %d sequences built through the KvCache API in %.1f s (%.1f GB of live KV, "
        "%d pages free), %s\n",
        context, fits, Seconds(build),
        all.live * 2.0 * o.head_dim * kernels::DeviceDTypeSize(kDtype) / 1e9,
        cache.pool().free_pages(),
        built->pool_full ? "as many as fit"
        : fits == target ? "as many as the rows need"
                         : "as many as the time budget allowed");
    std::printf("%6s %7s %6s %9s %9s %10s %8s %10s %8s %8s %6s %6s %15s\n", "policy", "context",
                "batch", "step ms", "min ms", "tokens/s", "KV GB", "weights GB", "GB/s", "of copy",
                "alpha", "sample", "graphs r/c/e/f");
    std::vector<int> batches = o.batches;
    if (largest_fits && fits > 0 &&
        std::find(batches.begin(), batches.end(), fits) == batches.end()) {
      batches.push_back(fits);  // the largest batch that fits: the equal-budget comparison
      std::sort(batches.begin(), batches.end());
    }
    // One summary line per context: step ms (fraction of copy bandwidth) by batch; "!" marks a
    // row with failed graph captures or non-finite logits.
    std::string summary =
        absl::StrFormat("engine %s ctx %d, step ms (of copy) by batch:", name, context);
    for (int batch : batches) {
      if (batch > fits) {
        if (built->pool_full) {
          std::printf("%6s %7d %6d   (does not fit: %d sequences of %d tokens fit in the pool)\n",
                      name, context, batch, fits, context);
        } else {
          std::printf("%6s %7d %6d   (not built: the time budget ran out at %d sequences)\n", name,
                      context, batch, fits);
        }
        continue;
      }
      if (Clock::now() >= deadline) {
        out_of_time = true;
        break;
      }
      absl::StatusOr<RowResult> r =
          TimeSteps(*model, cache, absl::MakeConstSpan(ids.data(), batch), o.engine_steps);
      if (!r.ok()) {
        std::fprintf(stderr, "rami-bench decode: engine: %s, context %d, batch %d: %s\n", name,
                     context, batch, r.status().ToString().c_str());
        return 1;
      }
      const double bytes = weight_read + r->kv_bytes;
      const double gbs = bytes / (r->ms * 1e-3) / 1e9;
      char alpha[16] = "n/a";
      if (r->alpha >= 0) std::snprintf(alpha, sizeof(alpha), "%.3f", r->alpha);
      char graphs[48];
      std::snprintf(
          graphs, sizeof(graphs), "%lld/%lld/%lld/%lld", static_cast<long long>(r->graphs.replays),
          static_cast<long long>(r->graphs.captures), static_cast<long long>(r->graphs.eager),
          static_cast<long long>(r->graphs.failed));
      const char* sample = r->sampled_on_device == 1.0   ? "device"
                           : r->sampled_on_device == 0.0 ? "host"
                                                         : "mixed";
      std::string note;
      if (largest_fits && batch == fits) note += "  (largest that fits)";
      if (r->nonfinite > 0) note += absl::StrCat("  (", r->nonfinite, " non-finite logits!)");
      std::printf("%6s %7d %6d %9.3f %9.3f %10.0f %8.2f %10.2f %8.0f %7.0f%% %6s %6s %15s%s\n",
                  name, context, batch, r->ms, r->min_ms, batch / (r->ms * 1e-3), r->kv_bytes / 1e9,
                  weight_read / 1e9, gbs, 100.0 * gbs / copy_gbs, alpha, sample, graphs,
                  note.c_str());
      std::fflush(stdout);
      if (largest_fits && batch == fits) {
        *largest = {.batch = batch, .tokens_per_s = batch / (r->ms * 1e-3), .pool_gib = pool_gib};
      }
      o.report->Add("engine", {{"policy", name},
                               {"context", context},
                               {"batch", batch},
                               {"step_ms", r->ms},
                               {"min_ms", r->min_ms},
                               {"tokens_per_s", batch / (r->ms * 1e-3)},
                               {"kv_gb", r->kv_bytes / 1e9},
                               {"of_copy", gbs / copy_gbs},
                               {"alpha", r->alpha},
                               {"sample", sample},
                               {"graphs", graphs},
                               {"nonfinite_logits", r->nonfinite}});
      summary += absl::StrFormat(" %d: %.2f (%.0f%%)%s", batch, r->ms, 100.0 * gbs / copy_gbs,
                                 r->graphs.failed > 0 || r->nonfinite > 0 ? "!" : "");
    }
    o.report->Summary(summary);
    RAMI_ENGINE_OK(FreeSequences(*model, cache, ids));
    if (out_of_time) break;
  }
  if (out_of_time) {
    std::printf("  (%s: time budget spent: later rows skipped)\n", name);
    o.report->Summary(absl::StrFormat("engine %s: time budget spent, later rows skipped", name));
  }
  return 0;
}

}  // namespace

int RunEngineBench(const DecodeBenchOptions& o, double copy_gbs) {
  const Clock::time_point start = Clock::now();
  // Dense may use 45% of the budget; dms what is left (its rows and the equal-budget line are
  // what the comparison is about).
  auto after = [&](double seconds) {
    return start +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  };
  std::printf(
      "\nengine: whole decode steps through rami::cuda::CudaModel (Reserve + RunReserved, CUDA "
      "graphs per batch bucket), Qwen3 %d layers, hidden %d, %d q / %d kv heads x %d, mlp %d, "
      "vocab %d, bf16; cache states of each context built through the KvCache API (no "
      "prefill), longest context first; %d timed steps per row after %d warm-up steps; time "
      "budget %.0f s\n",
      o.num_layers, o.hidden, o.num_q_heads, o.num_kv_heads, o.head_dim, o.intermediate, o.vocab,
      o.engine_steps, kWarmupSteps, o.engine_budget_s);
  Largest largest[2];
  int failed = 0;
  for (bool dms : {false, true}) {
    // One model at a time: each holds its weights and a pool of most of the free memory. A
    // failed policy does not stop the other (its error is printed; the exit status is 1).
    const Clock::time_point deadline = after(o.engine_budget_s * (dms ? 1.0 : 0.45));
    failed |= RunPolicy(o, dms, copy_gbs, deadline, &largest[dms]);
  }
  std::printf(
      "(step ms: mean wall clock of RunReserved, which ends with a sync: the host's table deltas, "
      "step plan, graph launch, greedy sampling of each sequence's token (sample: on the device, "
      "or host = logits rows copied back as fp32), decisions and commit; min ms: the fastest "
      "step; tokens/s = batch / step ms; KV GB: live K+V the step's attention reads, from the "
      "cache's live counts x head_dim x 2 x bf16; weights GB: every weight but the embedding "
      "table; GB/s = (weights + KV) / step ms, of copy = GB/s / copy bandwidth; alpha: eviction "
      "rate of the timed steps' own DMS decisions; graphs: replays / captures / eager steps / "
      "failed captures during the timed steps; an untimed step after them brings every logits "
      "row to the host: non-finite ones are flagged)\n");
  std::printf(
      "(dms: the cache state at the first step is synthetic (W=%d, %.3f of the tokens that left "
      "the window evicted) and sets the live KV; the timed steps' decisions come from the random "
      "model at its own rate (alpha), and reach the cache's eviction only W steps later)\n",
      o.dms_window, o.dms_rate);
  std::printf(
      "(the steps run on a twin of the model's cache without its copy log, so that the "
      "synthetic states' promotions are not replayed on the device; the timed steps' own "
      "promotions, at most one per stream and step, are not copied either)\n");
  const int longest = *std::max_element(o.contexts.begin(), o.contexts.end());
  if (largest[0].batch > 0 && largest[1].batch > 0) {
    std::printf(
        "\nengine, equal KV budget (the pool: %.1f / %.1f GiB) at context %d: dense batch %d -> "
        "%.0f tokens/s, dms batch %d -> %.0f tokens/s, dms/dense %.2fx\n",
        largest[0].pool_gib, largest[1].pool_gib, longest, largest[0].batch,
        largest[0].tokens_per_s, largest[1].batch, largest[1].tokens_per_s,
        largest[1].tokens_per_s / largest[0].tokens_per_s);
    o.report->Summary(absl::StrFormat(
        "engine, equal pool at ctx %d: dense b%d %.0f tok/s, dms b%d %.0f tok/s (%.2fx)", longest,
        largest[0].batch, largest[0].tokens_per_s, largest[1].batch, largest[1].tokens_per_s,
        largest[1].tokens_per_s / largest[0].tokens_per_s));
  } else {
    std::printf(
        "\nengine, equal KV budget at context %d: not measured (a policy fit no batch "
        "or ran out of time)\n",
        longest);
  }
  std::printf("engine: %.1f s%s\n", Seconds(start),
              failed != 0 ? " (FAILED: see the errors above)" : "");
  return failed;
}

}  // namespace rami::bench
