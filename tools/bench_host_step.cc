// `rami-bench host-step`; see bench_host_step.h.
#include "tools/bench_host_step.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "tools/bench_model_config.h"
#include "worker/collectives/collectives.h"
#include "worker/engine/cuda_step_host.h"
#include "worker/engine/engine.h"
#include "worker/engine/model_shape.h"

namespace rami::bench {

using engine::CudaStepHost;
using engine::CudaStepLayout;
using engine::CudaStepPlan;
using engine::Engine;
using engine::ForwardResult;
using engine::ModelShape;
using engine::SequenceChunk;
using engine::StepOutcome;
using engine::StepPlan;
using kv::CachePolicy;
using kv::KvCache;
using kv::SeqId;

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kWarmupSteps = 3;
constexpr int kRootChunk = 2048;  // the root's prefill chunk
constexpr int kGraphBatch = 256;  // CudaModelOptions::max_graph_batch's default
constexpr int kWindowSinks = 4;

double MicrosSince(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

// splitmix64's finalizer: the synthetic decisions and token ids.
uint64_t Mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The device as host memory: the deltas scattered into a replica of the tables, the copies and
// the packed plan copied into host buffers, a forward pass that returns synthetic decisions
// (1 with probability `rate`) and a token for every chunk the CUDA backend would sample.
class MirrorDevice final : public engine::StepDevice {
 public:
  MirrorDevice(double rate, int vocab) : vocab_(vocab), bits_(size_t{1} << 20) {
    const uint64_t threshold = static_cast<uint64_t>(std::clamp(rate, 0.0, 0.999999) * 0x1p64);
    for (size_t i = 0; i < bits_.size(); ++i) bits_[i] = Mix(i) < threshold ? 1 : 0;
  }

  absl::Status ApplyTables(const kv::KvTablesDelta& delta) override {
    replica_.Apply(delta);
    writes_ += delta.writes();
    return absl::OkStatus();
  }
  absl::Status CopySlots(absl::Span<const kernels::KvCopyOp> ops,
                         absl::Span<const int32_t> bounds) override {
    (void)bounds;
    ops_.assign(ops.begin(), ops.end());
    return absl::OkStatus();
  }
  absl::StatusOr<void*> PlanBuffer(int index, size_t bytes) override {
    if (plan_[index].size() < bytes) plan_[index].resize(bytes);
    return plan_[index].data();
  }
  int GraphBatch() const override { return kGraphBatch; }
  absl::Status Launch(absl::Span<const SequenceChunk> chunks, const CudaStepPlan& plan,
                      const CudaStepLayout& layout, int buffer) override {
    (void)layout;
    (void)buffer;
    result_ = Forward(chunks, plan);
    return absl::OkStatus();
  }
  absl::StatusOr<ForwardResult> Wait(std::vector<uint8_t>* decisions) override {
    decisions->swap(decisions_);
    return std::move(result_);
  }

  void set_heads(int heads) { heads_ = heads; }
  int64_t TakeWrites() { return std::exchange(writes_, 0); }

 private:
  ForwardResult Forward(absl::Span<const SequenceChunk> chunks, const CudaStepPlan& plan) {
    decisions_.resize(static_cast<size_t>(plan.token_stream.size()) * heads_);
    for (size_t at = 0; at < decisions_.size();) {  // rotating slices of the random bits
      const size_t n = std::min(decisions_.size() - at, bits_.size() - offset_);
      std::memcpy(decisions_.data() + at, bits_.data() + offset_, n);
      at += n;
      offset_ = (offset_ + n + 7919) % bits_.size();
    }
    ForwardResult result;
    result.vocab_size = vocab_;
    result.first_row.assign(chunks.size(), -1);
    result.sampled.resize(chunks.size());
    int rows = 0;
    for (size_t c = 0; c < chunks.size(); ++c) {
      if (chunks[c].sample.has_value() && !chunks[c].all_logits) {
        engine::SampledToken token;
        token.token_id = static_cast<int32_t>(Mix(++draws_) % static_cast<uint64_t>(vocab_));
        result.sampled[c] = std::move(token);
        continue;
      }
      result.first_row[c] = rows;
      rows += chunks[c].all_logits ? static_cast<int>(chunks[c].tokens.size()) : 1;
    }
    result.logits.assign(static_cast<size_t>(rows) * vocab_, 0.0f);
    return result;
  }

  const int vocab_;
  int heads_ = 1;
  std::vector<uint8_t> bits_;
  size_t offset_ = 0;
  uint64_t draws_ = 0;
  kv::KvTablesHost replica_;
  std::vector<kernels::KvCopyOp> ops_;
  std::vector<char> plan_[engine::StepDevice::kPlanBuffers];
  ForwardResult result_;
  std::vector<uint8_t> decisions_;
  int64_t writes_ = 0;
};

// The CUDA backend's host side over the mirror device.
class HostStepBackend final : public engine::ForwardBackend {
 public:
  HostStepBackend(ModelShape shape, const CachePolicy& policy, int page_size, MirrorDevice* device)
      : shape_(std::move(shape)),
        device_(device),
        host_(shape_.config().num_layers, shape_.dims().kv_heads, page_size, policy) {}

  const ModelShape& shape() const override { return shape_; }
  absl::Status Reserve(absl::Span<const SequenceChunk> chunks, KvCache& cache) const override {
    const Clock::time_point start = Clock::now();
    absl::Status status = shape_.Reserve(chunks, cache);
    reserve_us_ += MicrosSince(start);
    return status;
  }
  absl::StatusOr<ForwardResult> RunReserved(absl::Span<const SequenceChunk> chunks, KvCache& cache,
                                            collectives::Collectives& comm) const override {
    (void)comm;
    return host_.Run(chunks, cache, *device_);
  }
  void CacheChanged(absl::Span<const SeqId> ids) const override { host_.CacheChanged(ids); }

  CudaStepHost& host() const { return host_; }
  double TakeReserveMicros() const { return std::exchange(reserve_us_, 0.0); }

 private:
  ModelShape shape_;
  MirrorDevice* device_;
  mutable CudaStepHost host_;  // the Engine runs one step at a time
  mutable double reserve_us_ = 0;
};

}  // namespace

namespace {

// One (TP, policy, context) setting: a model shard, its cache and the Engine over the mirror.
struct Setting {
  int tp = 1;
  std::string policy;
  int context = 0;
  std::unique_ptr<MirrorDevice> device;
  HostStepBackend* backend = nullptr;  // owned by the engine
  std::unique_ptr<Engine> engine;
  uint64_t step_id = 0;
};

absl::StatusOr<CachePolicy> PolicyOf(const std::string& name, const HostStepOptions& o,
                                     int context) {
  if (name == "dms") return CachePolicy::Dms(o.shape.dms_window);
  if (name == "dense") return CachePolicy::Dense();
  if (name == "window") return CachePolicy::Window(kWindowSinks, context / 8 - kWindowSinks);
  return absl::InvalidArgumentError(
      absl::StrCat("--policies: unknown policy \"", name, "\" (dms, window, dense)"));
}

absl::StatusOr<StepOutcome> Execute(Setting& s, StepPlan plan) {
  plan.step_id = ++s.step_id;
  StepOutcome out = s.engine->Execute(plan);
  if (!out.status.ok()) return out.status;
  return out;
}

std::vector<int32_t> TokenIds(int n, uint64_t seed, int vocab) {
  std::vector<int32_t> ids(n);
  for (int i = 0; i < n; ++i) {
    ids[i] = static_cast<int32_t>(Mix(seed * 1000003 + i) % static_cast<uint64_t>(vocab));
  }
  return ids;
}

// A prefill chunk that samples nothing (a new sequence's first chunk when `create`).
engine::PlanPrefill Prefill(SeqId id, std::vector<int32_t> tokens, bool create) {
  engine::PlanPrefill p;
  p.seq_id = id;
  p.tokens = std::move(tokens);
  p.create = create;
  if (create) p.sampling = SamplingParams{};
  return p;
}

// The shard, its cache over a pool of o.shape.kv_budget_gib, the Engine; then the root
// (sequence 0) prefilled to the context.
absl::StatusOr<Setting> MakeSetting(const HostStepOptions& o, int tp, const std::string& policy,
                                    int context, int max_batch) {
  Setting s;
  s.tp = tp;
  s.policy = policy;
  s.context = context;
  RAMI_ASSIGN_OR_RETURN(const CachePolicy cache_policy, PolicyOf(policy, o, context));
  RAMI_ASSIGN_OR_RETURN(checkpoint::ModelConfig config,
                        BenchModelConfig(o.shape, context, policy == "dms"));
  RAMI_ASSIGN_OR_RETURN(ModelShape shape,
                        ModelShape::Make(std::move(config), {.rank = 0, .world_size = tp}));
  const int64_t page_bytes = shape.KvPageBytes(o.shape.page_size, 2);
  const int64_t pages = std::min<int64_t>(
      static_cast<int64_t>(o.shape.kv_budget_gib * (int64_t{1} << 30)) / page_bytes, INT32_MAX);
  RAMI_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                        shape.MakeCache({.page_size = o.shape.page_size,
                                         .num_pages = static_cast<int>(pages),
                                         .allocate_storage = false},
                                        cache_policy));
  s.device = std::make_unique<MirrorDevice>(o.shape.dms_rate, shape.config().vocab_size);
  s.device->set_heads(shape.dims().kv_heads);
  auto backend = std::make_unique<HostStepBackend>(std::move(shape), cache_policy,
                                                   o.shape.page_size, s.device.get());
  s.backend = backend.get();
  s.backend->host().Attach(*cache);
  s.engine = std::make_unique<Engine>(
      std::move(backend), std::move(cache), std::make_unique<collectives::SingleRankCollectives>(),
      engine::StepLimits{.max_step_tokens = std::max(o.mixed_prefill, kRootChunk) + max_batch,
                         .max_step_sequences = max_batch + 1});
  const int vocab = s.engine->model().config().vocab_size;
  for (int done = 0; done < context; done += kRootChunk) {
    StepPlan plan;
    plan.prefills.push_back(
        Prefill(0, TokenIds(std::min(kRootChunk, context - done), done, vocab), done == 0));
    RAMI_RETURN_IF_ERROR(Execute(s, std::move(plan)).status());
  }
  return s;
}

// Forks the root into sequences 1 … n (each samples its first token from the root's logits).
absl::Status Fork(Setting& s, int n) {
  StepPlan plan;
  plan.forks.push_back({.parent = 0, .children = {}});
  for (int i = 1; i <= n; ++i) plan.forks[0].children.push_back({.seq_id = i, .sampling = {}});
  return Execute(s, std::move(plan)).status();
}

// Per rank: weights read and FLOPs of a step of `tokens` tokens with `rows` logits rows, plus
// the attention FLOPs of `visible` keys summed over the step's queries.
struct Cost {
  double weight_bytes = 0, flops = 0;
};
Cost StepCost(const ModelShape& shape, int64_t tokens, int64_t rows, double visible) {
  const checkpoint::ModelConfig& c = shape.config();
  const checkpoint::ShardDims& d = shape.dims();
  const double hidden = c.hidden_size, D = c.head_dim;
  const double layer = hidden * (d.q_heads + 2 * d.kv_heads) * D + d.q_heads * D * hidden +
                       3 * hidden * d.intermediate;
  const double head = hidden * d.vocab;
  Cost cost;
  cost.weight_bytes = 2 * (c.num_layers * layer + head);  // bf16; the embedding's rows only
  cost.flops = 2 * (tokens * c.num_layers * layer + rows * head) +
               4 * d.q_heads * D * visible * c.num_layers;
  return cost;
}

// Runs kWarmupSteps + o.steps steps of `plan_for(step)` and fills the row's phases (per step).
template <typename PlanFor>
absl::Status TimeSteps(Setting& s, const HostStepOptions& o, PlanFor plan_for, HostStepRow* row) {
  for (int i = 0; i < kWarmupSteps + o.steps; ++i) {
    if (i == kWarmupSteps) {
      s.backend->host().ResetTimes();
      s.backend->TakeReserveMicros();
      s.device->TakeWrites();
      row->engine_us = 0;
    }
    const Clock::time_point start = Clock::now();
    RAMI_RETURN_IF_ERROR(Execute(s, plan_for(i)).status());
    row->engine_us += MicrosSince(start);
  }
  const engine::StepHostTimes& t = s.backend->host().times();
  const double n = o.steps;
  row->reserve_us = s.backend->TakeReserveMicros() / n;
  row->tables_us = t.tables_us / n;
  row->copies_us = t.copies_us / n;
  row->plan_us = t.plan_us / n;
  row->results_us = t.results_us / n;
  row->commit_us = t.commit_us / n;
  row->device_us = t.device_us / n;
  row->table_writes = static_cast<double>(s.device->TakeWrites()) / n;
  const double total = row->engine_us / n;
  row->host_us = total - row->device_us;
  row->engine_us = row->host_us - row->reserve_us - row->tables_us - row->copies_us - row->plan_us -
                   row->results_us - row->commit_us;
  return absl::OkStatus();
}

void Roofline(const HostStepOptions& o, const Setting& s, const std::vector<SeqId>& decoding,
              int prefill, HostStepRow* row) {
  const ModelShape& shape = s.engine->model().shape();
  const KvCache& cache = s.engine->cache();
  const double streams = static_cast<double>(cache.num_layers()) * cache.num_kv_heads();
  double live = 0;  // tokens over (layer, head) streams
  for (SeqId id : decoding) live += static_cast<double>(cache.SequenceStatsOf(id).live_sum);
  // Decode queries see each sequence's live keys; the prefill chunk's token i sees i + 1 (a
  // fresh sequence; the whole chunk in the window or dense).
  const double prefill_keys = 0.5 * prefill * (prefill + 1.0);
  const Cost cost = StepCost(shape, static_cast<int64_t>(decoding.size()) + prefill,
                             static_cast<int64_t>(decoding.size()) + (prefill > 0 ? 1 : 0),
                             live / cache.num_layers() / cache.num_kv_heads() + prefill_keys);
  const double row_bytes = 2.0 * shape.config().head_dim * 2;  // K and V, bf16
  row->weight_bytes = cost.weight_bytes;
  row->flops = cost.flops;
  row->live_kv_bytes = (live + prefill * streams) * row_bytes;
  row->roofline_us = 1e6 * (std::max(cost.weight_bytes / o.bandwidth, cost.flops / o.peak_flops) +
                            row->live_kv_bytes / o.bandwidth);
  row->ratio = row->host_us / row->roofline_us;
}

// The rows of one setting: every batch that fits, then the mixed row at the largest one.
absl::Status RunSetting(const HostStepOptions& o, int tp, const std::string& policy, int context,
                        HostStepReport* report) {
  const int wanted = *std::max_element(o.batches.begin(), o.batches.end());
  RAMI_ASSIGN_OR_RETURN(Setting s, MakeSetting(o, tp, policy, context, wanted));
  // Sequences that fit: the root's pages each (forks share them here, a real batch would not),
  // plus a margin for the steps' growth.
  const KvCache& cache = s.engine->cache();
  const int64_t per_sequence =
      cache.SequenceStatsOf(0).page_refs + int64_t{cache.num_layers()} * cache.num_kv_heads() *
                                               (2 + (kWarmupSteps + o.steps) / o.shape.page_size);
  const int fit = static_cast<int>(
      std::min<int64_t>(cache.pool().num_pages() / std::max<int64_t>(per_sequence, 1), wanted));
  const std::string where = absl::StrCat("TP ", tp, " ", policy, " ", context);
  if (fit < 1) {
    report->notes.push_back(absl::StrCat(where, ": no sequence fits the pool"));
    return absl::OkStatus();
  }
  RAMI_RETURN_IF_ERROR(Fork(s, fit));
  int largest = 0;
  for (int batch : o.batches) {
    if (batch > fit) {
      report->notes.push_back(
          absl::StrCat(where, ": batch ", batch, " does not fit (", fit, " sequences do)"));
      continue;
    }
    std::vector<SeqId> decoding;
    for (int i = 1; i <= batch; ++i) decoding.push_back(i);
    HostStepRow row{.tp = tp, .policy = policy, .context = context, .batch = batch};
    RAMI_RETURN_IF_ERROR(TimeSteps(
        s, o,
        [&](int) {
          StepPlan plan;
          plan.decodes = decoding;
          return plan;
        },
        &row));
    Roofline(o, s, decoding, 0, &row);
    report->rows.push_back(row);
    largest = std::max(largest, batch);
  }
  if (o.mixed_prefill > 0 && largest > 0) {
    std::vector<SeqId> decoding;
    for (int i = 1; i <= largest; ++i) decoding.push_back(i);
    const int vocab = s.engine->model().config().vocab_size;
    HostStepRow row{.tp = tp,
                    .policy = policy,
                    .context = context,
                    .batch = largest,
                    .prefill = o.mixed_prefill};
    const SeqId first = fit + 1;  // each step prefills a new sequence and frees the last one
    RAMI_RETURN_IF_ERROR(TimeSteps(
        s, o,
        [&](int i) {
          StepPlan plan;
          if (i > 0) plan.frees.push_back(first + i - 1);
          plan.prefills.push_back(
              Prefill(first + i, TokenIds(o.mixed_prefill, first + i, vocab), true));
          plan.decodes = decoding;
          return plan;
        },
        &row));
    Roofline(o, s, decoding, o.mixed_prefill, &row);
    report->rows.push_back(row);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HostStepReport> RunHostStepBench(const HostStepOptions& o) {
  HostStepReport report;
  for (int tp : o.tps) {
    for (const std::string& policy : o.policies) {
      for (int context : o.contexts) {
        if (absl::Status s = RunSetting(o, tp, policy, context, &report); !s.ok()) {
          return absl::Status(s.code(), absl::StrCat("TP ", tp, " ", policy, " context ", context,
                                                     ": ", s.message()));
        }
      }
    }
  }
  return report;
}

std::string HostStepText(const HostStepOptions& o, const HostStepReport& report) {
  std::string out = absl::StrFormat(
      "rami-bench host-step: the host side of a CUDA step (engine::CudaStepHost under the real "
      "Engine; the device is host memory)\nmodel: Qwen3 %d layers, hidden %d, %d q / %d kv heads "
      "x %d, mlp %d, vocab %d; page %d tokens; dms W %d at rate %.3f; pool %.0f GiB a GPU\n"
      "roofline: max(weights / %.1f TB/s, FLOPs / %.0f TFLOP/s) + live KV / %.1f TB/s (H200, "
      "bf16); TP all-reduces not counted\n"
      "microseconds per step, %d steps after %d warm-up:\n"
      "%3s %-6s %6s %5s %5s %8s %8s %7s %7s %8s %8s %8s %9s %9s %10s %7s\n",
      o.shape.num_layers, o.shape.hidden, o.shape.num_q_heads, o.shape.num_kv_heads,
      o.shape.head_dim, o.shape.intermediate, o.shape.vocab, o.shape.page_size, o.shape.dms_window,
      o.shape.dms_rate, o.shape.kv_budget_gib, o.bandwidth / 1e12, o.peak_flops / 1e12,
      o.bandwidth / 1e12, o.steps, kWarmupSteps, "tp", "policy", "ctx", "batch", "pfill", "reserve",
      "tables", "copies", "plan", "results", "commit", "engine", "host", "writes", "roofline",
      "ratio");
  for (const HostStepRow& r : report.rows) {
    out += absl::StrFormat(
        "%3d %-6s %6d %5d %5d %8.1f %8.1f %7.1f %7.1f %8.1f %8.1f %8.1f %9.1f %9.0f %10.1f "
        "%6.1f%%\n",
        r.tp, r.policy, r.context, r.batch, r.prefill, r.reserve_us, r.tables_us, r.copies_us,
        r.plan_us, r.results_us, r.commit_us, r.engine_us, r.host_us, r.table_writes, r.roofline_us,
        100 * r.ratio);
  }
  for (const std::string& note : report.notes) out += "  " + note + "\n";
  return out;
}

nlohmann::json HostStepJson(const HostStepOptions& o, const HostStepReport& report) {
  nlohmann::json j = {{"layers", o.shape.num_layers},    {"kv_heads", o.shape.num_kv_heads},
                      {"page_size", o.shape.page_size},  {"dms_window", o.shape.dms_window},
                      {"dms_rate", o.shape.dms_rate},    {"pool_gib", o.shape.kv_budget_gib},
                      {"bandwidth", o.bandwidth},        {"peak_flops", o.peak_flops},
                      {"allreduce_counted", false},      {"steps", o.steps},
                      {"rows", nlohmann::json::array()}, {"notes", report.notes}};
  for (const HostStepRow& r : report.rows) {
    j["rows"].push_back({{"tp", r.tp},
                         {"policy", r.policy},
                         {"context", r.context},
                         {"batch", r.batch},
                         {"prefill", r.prefill},
                         {"reserve_us", r.reserve_us},
                         {"tables_us", r.tables_us},
                         {"copies_us", r.copies_us},
                         {"plan_us", r.plan_us},
                         {"results_us", r.results_us},
                         {"commit_us", r.commit_us},
                         {"engine_us", r.engine_us},
                         {"host_us", r.host_us},
                         {"device_us", r.device_us},
                         {"table_writes", r.table_writes},
                         {"weight_bytes", r.weight_bytes},
                         {"flops", r.flops},
                         {"live_kv_bytes", r.live_kv_bytes},
                         {"roofline_us", r.roofline_us},
                         {"ratio", r.ratio}});
  }
  return j;
}

}  // namespace rami::bench
