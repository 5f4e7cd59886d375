// rami-bench: benchmarks that print figures and the machine they ran on.
//   rami-bench kv-capacity [--seq_len=32768] [--budget_gib=119] [--json] ...
//   rami-bench decode [--batches=1,16,24,32,128,256] [--contexts=4096,32768] [--iters=20]
//                     [--eviction_rate=0.875] [--dms_window=512] [--budget_gib=119]
//                     [--engine=on|off] [--engine_steps=20] [--engine_budget_s=100]  (CUDA)
//                     [--json_out=FILE] [--require_gpu]
//   rami-bench load --server=ADDR [--rate=4] [--jobs=100] [--duration_s=60] [--n_mix=1,4,8,16]
//                   [--max_tokens_mix=8,32,64] [--abort_fraction=0.1] [--abort_within_ms=500]
//                   [--job_timeout_s=120]
//                   [--progress_s=0] [--api_key=KEY] [--json]   (tools/bench_load.h)
//   rami-bench prefix --server=ADDR [--prefix_tokens=2048] [--questions=200]
//                     [--question_tokens=24] [--questions_without_cache=-1] [--n=8]
//                     [--max_tokens=8] [--concurrency=4]
//                     [--fill=8] [--api_key=KEY] [--json]   (tools/bench_prefix.h)
//   rami-bench sampling [--vocabs=151936,32000] [--rows=64] [--sampling_iters=5]
//                       [--configs=greedy,t1,qwen3,top_p,min_p] [--json]
//                       the CPU sampler's µs per row (tools/bench_sampling.h)
//   rami-bench overhead --server=ADDR --model_dir=DIR [--generate=PATH] [--prompt_ids=1,2,..]
//                       [--n_list=1,16] [--temperatures=0,1] [--max_tokens=128] [--runs=5]
//                       [--json]   (tools/bench_overhead.h)
//   rami-bench host-step [--tps=1,8] [--policies=dms,window,dense] [--contexts=4096,32768]
//                        [--host_batches=1,16,64,128,256] [--host_steps=20] [--mixed_prefill=2048]
//                        [--eviction_rate=0.875] [--dms_window=512] [--budget_gib=119] [--json]
//                        the host side of a CUDA step, µs per phase (tools/bench_host_step.h)
//   rami-bench devices   the CUDA devices as rami sees them; exit 1 without a usable one
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "tools/bench_host_step.h"
#include "tools/bench_load.h"
#include "tools/bench_overhead.h"
#include "tools/bench_prefix.h"
#include "tools/bench_sampling.h"
#include "tools/kv_capacity.h"
#if defined(RAMI_HAVE_BENCH_DECODE)
#include "kernels/cuda/device.h"
#include "tools/bench_decode.h"
#endif

ABSL_FLAG(std::string, shape, "",
          "kv-capacity: a named model shape instead of the shape flags: qwen3-8b, "
          "deepseek-v3 (MLA latent rows), llama3-405b");
ABSL_FLAG(int, num_layers, 36, "model layers (default: Qwen3-8B)");
ABSL_FLAG(int, num_kv_heads, 8, "KV heads");
ABSL_FLAG(int, head_dim, 128, "head dimension");
ABSL_FLAG(int, bytes_per_element, 2, "bytes per K/V element (2 = bf16)");
ABSL_FLAG(double, budget_gib, 119.0, "KV memory budget in GiB");
ABSL_FLAG(int64_t, seq_len, 32768, "tokens per sequence");
ABSL_FLAG(double, eviction_rate, 7.0 / 8.0, "synthetic DMS eviction rate (mean alpha)");
ABSL_FLAG(int, dms_window, 512, "DMS window W");
ABSL_FLAG(int, window_sinks, 4, "window policy: sink tokens");
ABSL_FLAG(int, window_recent, 0, "window policy: recent tokens (0: seq_len/8 - sinks)");
ABSL_FLAG(std::string, page_sizes, "16,64", "page sizes in tokens, comma-separated");
ABSL_FLAG(uint32_t, seed, 1, "seed of the synthetic decisions (sampling: logits and draws)");
ABSL_FLAG(bool, json, false, "print one JSON object instead of a table");
ABSL_FLAG(std::string, batches, "1,16,24,32,128,256", "decode: batch sizes, comma-separated");
ABSL_FLAG(std::string, contexts, "4096,32768", "decode: attention contexts, comma-separated");
ABSL_FLAG(int, iters, 20, "decode: timed repetitions per measurement");
ABSL_FLAG(std::string, peer, "", "decode: JSON of tools/bench_peer.py, for rami/peer ratios");
ABSL_FLAG(std::string, engine, "on",
          "decode: on|off: whole decode steps through the CUDA backend (CudaModel)");
ABSL_FLAG(int, engine_steps, 20, "decode: engine: timed decode steps per row, after warm-up");
ABSL_FLAG(double, engine_budget_s, 100,
          "decode: engine: seconds its rows may take; later rows are skipped (saying so)");
ABSL_FLAG(std::string, json_out, "", "decode: also write every row as JSON to this file");
ABSL_FLAG(bool, require_gpu, false,
          "decode: exit 1 (not 0) when built without CUDA or run without a usable device");
ABSL_FLAG(std::string, server, "127.0.0.1:50051", "load: the coordinator's gRPC address");
ABSL_FLAG(double, rate, 4.0, "load: mean job arrivals per second (Poisson)");
ABSL_FLAG(int, jobs, 100, "load: at most this many jobs");
ABSL_FLAG(double, duration_s, 60, "load: arrivals stop after this many seconds");
ABSL_FLAG(std::string, n_mix, "1,4,8,16", "load: branches per job, drawn uniformly");
ABSL_FLAG(std::string, max_tokens_mix, "8,32,64", "load: tokens per branch, drawn uniformly");
ABSL_FLAG(double, temperature, 1.0, "load: sampling temperature");
ABSL_FLAG(double, abort_fraction, 0.1, "load: share of jobs aborted at a random time");
ABSL_FLAG(double, abort_within_ms, 500, "load: an abort lands this soon after its job is sent");
ABSL_FLAG(double, job_timeout_s, 120, "load: a job open longer than this counts as hung");
ABSL_FLAG(double, progress_s, 0, "load: print a progress line this often (0: never)");
ABSL_FLAG(std::string, api_key, "", "load, prefix: API key (default: $RAMI_API_KEY)");
ABSL_FLAG(int, prefix_tokens, 2048, "prefix: tokens of the shared prefix (and of each fill)");
ABSL_FLAG(int, questions, 200, "prefix: jobs, each the prefix and a question of its own");
ABSL_FLAG(int, question_tokens, 24, "prefix: tokens of each question");
ABSL_FLAG(int, questions_without_cache, -1,
          "prefix: questions of the cache-off pass (-1: all; its cold prefills are slow on CPU)");
ABSL_FLAG(int, n, 8, "prefix: branches per job");
ABSL_FLAG(int, max_tokens, 8, "prefix: tokens per branch");
ABSL_FLAG(int, concurrency, 4, "prefix: jobs in flight");
ABSL_FLAG(int, fill, 8, "prefix: prefixes cached to measure their pages (0: skip)");
ABSL_FLAG(std::string, model_dir, "", "overhead: the checkpoint the workers serve");
ABSL_FLAG(std::string, generate, "",
          "overhead: the rami-generate binary (default: beside rami-bench)");
ABSL_FLAG(std::string, prompt_ids, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16",
          "overhead: the prompt's token ids");
ABSL_FLAG(std::string, n_list, "1,16", "overhead: branch counts, comma-separated");
ABSL_FLAG(std::string, temperatures, "0,1", "overhead: temperatures, comma-separated");
ABSL_FLAG(int, runs, 5, "overhead: runs of each configuration each way");
ABSL_FLAG(std::string, vocabs, "151936,32000", "sampling: vocabulary sizes, comma-separated");
ABSL_FLAG(int, rows, 64, "sampling: logits rows per sampler call");
ABSL_FLAG(int, sampling_iters, 5, "sampling: timed sampler calls per measurement");
ABSL_FLAG(std::string, configs, "",
          "sampling: configurations to run, comma-separated (greedy, t1, qwen3, top_p, min_p); "
          "default all");
ABSL_FLAG(std::string, tps, "1,8", "host-step: tensor-parallel sizes (one rank's shard each)");
ABSL_FLAG(std::string, policies, "dms,window,dense", "host-step: cache policies");
ABSL_FLAG(std::string, host_batches, "1,16,64,128,256", "host-step: decode batch sizes");
ABSL_FLAG(int, host_steps, 20, "host-step: timed steps per row, after 3 warm-up steps");
ABSL_FLAG(int, mixed_prefill, 2048,
          "host-step: the mixed row's prefill chunk beside the decodes (0: no mixed row)");

namespace {

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

// "1,16,32" → {1, 16, 32}; false on anything but positive integers.
bool ParseList(const std::string& text, std::vector<int>& list) {
  list.clear();
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    int value = 0;
    if (!absl::SimpleAtoi(item, &value) || value < 1) return false;
    list.push_back(value);
  }
  return true;
}

// The model shape and DMS settings of `decode` and `host-step`.
void ShapeFromFlags(rami::bench::DecodeBenchOptions& o) {
  o.num_layers = absl::GetFlag(FLAGS_num_layers);
  o.num_kv_heads = absl::GetFlag(FLAGS_num_kv_heads);
  o.head_dim = absl::GetFlag(FLAGS_head_dim);
  o.dms_rate = absl::GetFlag(FLAGS_eviction_rate);
  o.dms_window = absl::GetFlag(FLAGS_dms_window);
  o.kv_budget_gib = absl::GetFlag(FLAGS_budget_gib);
}

std::string Machine() {
  return CpuModel() + ", " + std::to_string(std::thread::hardware_concurrency()) + " threads";
}

// A benchmark's report: under --json, `j` with the machine under `machine_key`; else `text`
// and a line naming the machine (`machine_note` after it).
void PrintReport(nlohmann::json j, const std::string& text, const char* machine_key,
                 const std::string& machine_note = "") {
  if (absl::GetFlag(FLAGS_json)) {
    j[machine_key] = Machine();
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s%s: %s%s\n", text.c_str(),
                std::string(machine_key) == "client_machine" ? "client machine" : "machine",
                Machine().c_str(), machine_note.c_str());
  }
}

absl::StatusOr<rami::KvCapacityOptions> Options() {
  rami::KvCapacityOptions o;
  o.num_layers = absl::GetFlag(FLAGS_num_layers);
  o.num_kv_heads = absl::GetFlag(FLAGS_num_kv_heads);
  o.head_dim = absl::GetFlag(FLAGS_head_dim);
  if (!absl::GetFlag(FLAGS_shape).empty()) {
    if (absl::Status s = o.ApplyShape(absl::GetFlag(FLAGS_shape)); !s.ok()) return s;
  }
  o.bytes_per_element = absl::GetFlag(FLAGS_bytes_per_element);
  o.budget_gib = absl::GetFlag(FLAGS_budget_gib);
  o.seq_len = absl::GetFlag(FLAGS_seq_len);
  o.eviction_rate = absl::GetFlag(FLAGS_eviction_rate);
  o.dms_window = absl::GetFlag(FLAGS_dms_window);
  o.window_sinks = absl::GetFlag(FLAGS_window_sinks);
  o.window_recent = absl::GetFlag(FLAGS_window_recent);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.page_sizes.clear();
  for (absl::string_view p : absl::StrSplit(absl::GetFlag(FLAGS_page_sizes), ',')) {
    int value = 0;
    if (!absl::SimpleAtoi(p, &value)) {
      return absl::InvalidArgumentError("--page_sizes: expected integers, e.g. 16,64");
    }
    o.page_sizes.push_back(value);
  }
  return o;
}

int KvCapacity() {
  absl::StatusOr<rami::KvCapacityOptions> o = Options();
  const absl::Time start = absl::Now();
  absl::StatusOr<std::vector<rami::KvCapacityRow>> rows =
      o.ok() ? rami::RunKvCapacity(*o)
             : absl::StatusOr<std::vector<rami::KvCapacityRow>>(o.status());
  if (!rows.ok()) {
    std::fprintf(stderr, "rami-bench: %s\n", rows.status().ToString().c_str());
    return 1;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const std::string machine = Machine();
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = {{"benchmark", "kv-capacity"},
                        {"machine", machine},
                        {"seq_len", o->seq_len},
                        {"budget_gib", o->budget_gib},
                        {"eviction_rate", o->eviction_rate},
                        {"dms_window", o->dms_window},
                        {"model",
                         {{"num_layers", o->num_layers},
                          {"num_kv_heads", o->num_kv_heads},
                          {"head_dim", o->head_dim},
                          {"k_only", o->k_only},
                          {"bytes_per_element", o->bytes_per_element}}},
                        {"seconds", seconds},
                        {"rows", nlohmann::json::array()}};
    for (const rami::KvCapacityRow& r : *rows) {
      j["rows"].push_back({{"policy", r.policy},
                           {"page_size", r.page_size},
                           {"live_tokens", r.live_tokens},
                           {"live_bytes", r.live_bytes},
                           {"bytes_per_token", r.bytes_per_token},
                           {"pages", r.pages},
                           {"page_bytes", r.page_bytes},
                           {"sequences_fit", r.sequences_fit},
                           {"compression_ratio", r.compression_ratio},
                           {"eviction_rate", r.eviction_rate}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf(
      "kv-capacity: %lld tokens/sequence, %d layers x %d KV heads x head_dim %d %s"
      "(%d B/elem), budget %.1f GiB, eviction rate %.3f, W=%d\n",
      static_cast<long long>(o->seq_len), o->num_layers, o->num_kv_heads, o->head_dim,
      o->k_only ? "K-only (MLA latent) " : "K+V ", o->bytes_per_element, o->budget_gib,
      o->eviction_rate, o->dms_window);
  std::printf("%-30s %5s %12s %10s %12s %10s %12s %10s %8s\n", "policy", "page", "live tok",
              "B/token", "live MiB", "pages", "paged MiB", "seqs fit", "ratio");
  for (const rami::KvCapacityRow& r : *rows) {
    std::printf("%-30s %5d %12.1f %10.0f %12.1f %10lld %12.1f %10lld %8.2f\n", r.policy.c_str(),
                r.page_size, r.live_tokens, r.bytes_per_token, r.live_bytes / (1 << 20),
                static_cast<long long>(r.pages), r.page_bytes / (1 << 20),
                static_cast<long long>(r.sequences_fit), r.compression_ratio);
  }
  std::printf("machine: %s; bookkeeping ran in %.2f s\n", machine.c_str(), seconds);
  return 0;
}

// `devices`: what the CUDA runtime says (device count, or why none; driver and runtime
// versions): tests/gpu/run.sh's first look at the GPU through rami's own build. Exit 0 when a
// device is usable.
int Devices() {
#if defined(RAMI_HAVE_BENCH_DECODE)
  const rami::cuda::DeviceProbe probe = rami::cuda::ProbeDevices();
  std::printf("rami-bench devices: %s\n", rami::cuda::DescribeDevices(probe).c_str());
  return probe.count > 0 ? 0 : 1;
#else
  std::printf("rami-bench devices: built without CUDA, cuBLASLt or NCCL\n");
  return 1;
#endif
}

// `decode`: the Qwen3-8B-shaped GPU benchmark (tools/bench_decode.h). Without CUDA (build or
// machine) it says so and exits 0 so CI can call it anywhere — or 1 with --require_gpu, which
// tests/gpu/run.sh passes so that a GPU run never reports a benchmark that measured nothing.
int Decode() {
  const bool require_gpu = absl::GetFlag(FLAGS_require_gpu);
#if defined(RAMI_HAVE_BENCH_DECODE)
  rami::bench::BenchReport report;
  rami::bench::DecodeBenchOptions o;
  o.report = &report;
  ShapeFromFlags(o);
  o.iters = absl::GetFlag(FLAGS_iters);
  o.engine_steps = absl::GetFlag(FLAGS_engine_steps);
  o.engine_budget_s = absl::GetFlag(FLAGS_engine_budget_s);
  if (const std::string engine = absl::GetFlag(FLAGS_engine); engine == "on" || engine == "off") {
    o.engine = engine == "on";
  } else {
    std::fprintf(stderr, "rami-bench: --engine: expected on or off, got %s\n", engine.c_str());
    return 2;
  }
  if (!ParseList(absl::GetFlag(FLAGS_batches), o.batches) ||
      !ParseList(absl::GetFlag(FLAGS_contexts), o.contexts)) {
    std::fprintf(stderr,
                 "rami-bench: --batches, --contexts: expected positive integers, e.g. 1,16\n");
    return 2;
  }
  if (o.iters < 1 || o.num_layers < 1 || o.dms_window < 1 || !(o.dms_rate >= 0) ||
      o.dms_rate >= 1 || !(o.kv_budget_gib > 0) || o.engine_steps < 1 || !(o.engine_budget_s > 0)) {
    std::fprintf(stderr,
                 "rami-bench: --iters, --num_layers, --dms_window, --budget_gib, --engine_steps, "
                 "--engine_budget_s must be positive and --eviction_rate in [0, 1)\n");
    return 2;
  }
  if (const std::string peer = absl::GetFlag(FLAGS_peer); !peer.empty()) {
    std::ifstream in(peer);
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.contains("rows") || !j["rows"].is_array()) {
      std::fprintf(stderr, "rami-bench: --peer: %s is not bench_peer.py's JSON\n", peer.c_str());
      return 2;
    }
    for (const nlohmann::json& row : j["rows"]) {
      const std::pair<int, int> key = {row.value("context", 0), row.value("batch", 0)};
      const std::string kind = row.value("kind", "sdpa");
      (kind == "transformers" ? o.peer_step_ms : o.peer_attention_ms)[key] = row.value("ms", 0.0);
    }
  }
  return report.Finish(absl::GetFlag(FLAGS_json_out), rami::bench::RunDecodeBench(o, require_gpu));
#else
  std::printf(
      "rami-bench decode: built without CUDA, cuBLASLt or NCCL (not found at configure time)%s\n",
      require_gpu ? " (--require_gpu: failing)" : "");
  return require_gpu ? 1 : 0;
#endif
}

// `load`: tools/bench_load.h against --server. Exit 0 when no job hung or was lost, 1 otherwise.
std::string ApiKey() {
  std::string key = absl::GetFlag(FLAGS_api_key);
  if (key.empty() && std::getenv("RAMI_API_KEY") != nullptr) key = std::getenv("RAMI_API_KEY");
  return key;
}

int Prefix() {
  rami::bench::PrefixBenchOptions o;
  o.server = absl::GetFlag(FLAGS_server);
  o.api_key = ApiKey();
  o.prefix_tokens = absl::GetFlag(FLAGS_prefix_tokens);
  o.questions = absl::GetFlag(FLAGS_questions);
  o.question_tokens = absl::GetFlag(FLAGS_question_tokens);
  o.questions_without_cache = absl::GetFlag(FLAGS_questions_without_cache);
  o.n = absl::GetFlag(FLAGS_n);
  o.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.fill = absl::GetFlag(FLAGS_fill);
  o.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<rami::bench::PrefixReport> report = rami::bench::RunPrefixBench(o);
  if (!report.ok()) {
    std::fprintf(stderr, "rami-bench: %s\n", std::string(report.status().message()).c_str());
    return 2;
  }
  PrintReport(rami::bench::PrefixReportJson(o, *report), rami::bench::PrefixReportText(o, *report),
              "client_machine");
  return 0;
}

int Overhead() {
  rami::bench::OverheadOptions o;
  o.server = absl::GetFlag(FLAGS_server);
  o.api_key = ApiKey();
  o.model_dir = absl::GetFlag(FLAGS_model_dir);
  o.generate = absl::GetFlag(FLAGS_generate);
  if (o.generate.empty()) {
    std::error_code error;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
    o.generate = (self.parent_path() / "rami-generate").string();
  }
  o.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  o.runs = absl::GetFlag(FLAGS_runs);
  o.n.clear();
  o.temperatures.clear();
  o.prompt.clear();
  bool parsed = true;
  for (absl::string_view v : absl::StrSplit(absl::GetFlag(FLAGS_prompt_ids), ',')) {
    int32_t id = 0;
    parsed &= absl::SimpleAtoi(v, &id);
    o.prompt.push_back(id);
  }
  for (absl::string_view v : absl::StrSplit(absl::GetFlag(FLAGS_n_list), ',')) {
    int n = 0;
    parsed &= absl::SimpleAtoi(v, &n) && n >= 1;
    o.n.push_back(n);
  }
  for (absl::string_view v : absl::StrSplit(absl::GetFlag(FLAGS_temperatures), ',')) {
    float t = 0;
    parsed &= absl::SimpleAtof(v, &t) && t >= 0;
    o.temperatures.push_back(t);
  }
  if (!parsed) {
    std::fprintf(stderr, "rami-bench: --prompt_ids, --n_list, --temperatures: expected numbers\n");
    return 2;
  }
  absl::StatusOr<std::vector<rami::bench::OverheadRow>> rows = rami::bench::RunOverhead(o);
  if (!rows.ok()) {
    std::fprintf(stderr, "rami-bench: %s\n", std::string(rows.status().message()).c_str());
    return 2;
  }
  const std::string blas = std::getenv("OPENBLAS_NUM_THREADS") != nullptr
                               ? std::getenv("OPENBLAS_NUM_THREADS")
                               : "unset";
  nlohmann::json j = rami::bench::OverheadJson(o, *rows);
  j["openblas_num_threads"] = blas;
  PrintReport(j, rami::bench::OverheadText(o, *rows), "machine", ", OPENBLAS_NUM_THREADS=" + blas);
  return 0;
}

int Load() {
  rami::bench::LoadOptions o;
  o.server = absl::GetFlag(FLAGS_server);
  o.api_key = ApiKey();
  o.rate = absl::GetFlag(FLAGS_rate);
  o.max_jobs = absl::GetFlag(FLAGS_jobs);
  o.duration = absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  o.temperature = absl::GetFlag(FLAGS_temperature);
  o.abort_fraction = absl::GetFlag(FLAGS_abort_fraction);
  o.abort_within = absl::Milliseconds(absl::GetFlag(FLAGS_abort_within_ms));
  o.job_timeout = absl::Seconds(absl::GetFlag(FLAGS_job_timeout_s));
  o.seed = absl::GetFlag(FLAGS_seed);
  o.progress_every = absl::Seconds(absl::GetFlag(FLAGS_progress_s));
  o.progress = [](const std::string& line) {  // stderr: stdout may be --json
    std::fprintf(stderr, "%s\n", line.c_str());
  };
  auto parse_mix = [](const char* flag, const std::string& text, std::vector<int>& list) {
    list.clear();
    for (absl::string_view item : absl::StrSplit(text, ',')) {
      int value = 0;
      if (!absl::SimpleAtoi(item, &value) || value < 1 || value > 100000) {
        std::fprintf(stderr, "rami-bench: --%s: expected positive integers, e.g. 1,4\n", flag);
        return false;
      }
      list.push_back(value);
    }
    return true;
  };
  if (!parse_mix("n_mix", absl::GetFlag(FLAGS_n_mix), o.n_mix) ||
      !parse_mix("max_tokens_mix", absl::GetFlag(FLAGS_max_tokens_mix), o.max_tokens_mix)) {
    return 2;
  }
  absl::StatusOr<rami::bench::LoadReport> report = rami::bench::RunLoad(o);
  if (!report.ok()) {
    std::fprintf(stderr, "rami-bench: %s\n", std::string(report.status().message()).c_str());
    return 2;
  }
  nlohmann::json j = rami::bench::LoadReportJson(*report);
  j["benchmark"] = "load";
  PrintReport(j, rami::bench::LoadReportText(*report), "client_machine");
  return report->hung == 0 && report->lost == 0 ? 0 : 1;
}

// `sampling`: the CPU sampler's cost per row (tools/bench_sampling.h). Exit 2 on bad flags.
int Sampling() {
  rami::bench::SamplingBenchOptions o;
  o.vocabs.clear();
  for (absl::string_view item : absl::StrSplit(absl::GetFlag(FLAGS_vocabs), ',')) {
    int value = 0;
    if (!absl::SimpleAtoi(item, &value) || value < 1) {
      std::fprintf(stderr, "rami-bench: --vocabs: expected positive integers, e.g. 151936\n");
      return 2;
    }
    o.vocabs.push_back(value);
  }
  o.rows = absl::GetFlag(FLAGS_rows);
  o.iters = absl::GetFlag(FLAGS_sampling_iters);
  o.seed = absl::GetFlag(FLAGS_seed);
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_configs), ',', absl::SkipEmpty())) {
    o.configs.emplace_back(name);
  }
  if (o.rows < 1 || o.iters < 1) {
    std::fprintf(stderr, "rami-bench: --rows and --sampling_iters must be positive\n");
    return 2;
  }
  const absl::StatusOr<std::vector<rami::bench::SamplingBenchRow>> rows =
      rami::bench::RunSamplingBench(o);
  if (!rows.ok()) {
    std::fprintf(stderr, "rami-bench: --configs: %s\n",
                 std::string(rows.status().message()).c_str());
    return 2;
  }
  nlohmann::json j = rami::bench::SamplingBenchJson(o, *rows);
  j["benchmark"] = "sampling";
  PrintReport(j, rami::bench::SamplingBenchText(o, *rows), "machine", " (one thread used)");
  return 0;
}

// `host-step`: the host side of a CUDA step (tools/bench_host_step.h). Exit 2 on bad flags.
int HostStep() {
  rami::bench::HostStepOptions o;
  ShapeFromFlags(o.shape);
  o.steps = absl::GetFlag(FLAGS_host_steps);
  o.mixed_prefill = absl::GetFlag(FLAGS_mixed_prefill);
  o.policies = absl::StrSplit(absl::GetFlag(FLAGS_policies), ',', absl::SkipEmpty());
  if (!ParseList(absl::GetFlag(FLAGS_host_batches), o.batches) ||
      !ParseList(absl::GetFlag(FLAGS_contexts), o.contexts) ||
      !ParseList(absl::GetFlag(FLAGS_tps), o.tps)) {
    std::fprintf(stderr,
                 "rami-bench: --host_batches, --contexts, --tps: expected positive "
                 "integers, e.g. 1,16\n");
    return 2;
  }
  if (o.steps < 1 || o.mixed_prefill < 0 || o.shape.num_layers < 1 || o.shape.dms_window < 1 ||
      !(o.shape.dms_rate >= 0) || o.shape.dms_rate >= 1 || !(o.shape.kv_budget_gib > 0)) {
    std::fprintf(stderr,
                 "rami-bench: --host_steps, --num_layers, --dms_window, --budget_gib must "
                 "be positive, --mixed_prefill ≥ 0 and --eviction_rate in [0, 1)\n");
    return 2;
  }
  const absl::StatusOr<rami::bench::HostStepReport> report = rami::bench::RunHostStepBench(o);
  if (!report.ok()) {
    std::fprintf(stderr, "rami-bench host-step: %s\n", report.status().ToString().c_str());
    return absl::IsInvalidArgument(report.status()) ? 2 : 1;
  }
  nlohmann::json j = rami::bench::HostStepJson(o, *report);
  j["benchmark"] = "host-step";
  PrintReport(j, rami::bench::HostStepText(o, *report), "machine", " (one thread used)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "rami-bench kv-capacity|decode|load|prefix|overhead|sampling|host-step|devices [flags]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() == 2 && std::string(args[1]) == "kv-capacity") return KvCapacity();
  if (args.size() == 2 && std::string(args[1]) == "decode") return Decode();
  if (args.size() == 2 && std::string(args[1]) == "devices") return Devices();
  if (args.size() == 2 && std::string(args[1]) == "load") return Load();
  if (args.size() == 2 && std::string(args[1]) == "prefix") return Prefix();
  if (args.size() == 2 && std::string(args[1]) == "overhead") return Overhead();
  if (args.size() == 2 && std::string(args[1]) == "sampling") return Sampling();
  if (args.size() == 2 && std::string(args[1]) == "host-step") return HostStep();
  std::fprintf(stderr,
               "usage: rami-bench kv-capacity [--seq_len=N] [--json] ...\n"
               "       rami-bench decode [--batches=1,16,24,32,128,256] [--iters=20] "
               "[--engine=on|off] [--json_out=FILE] [--require_gpu]\n"
               "       rami-bench load --server=ADDR [--rate=4] [--jobs=100] [--duration_s=60] "
               "[--abort_fraction=0.1] [--json]\n"
               "       rami-bench sampling [--vocabs=151936,32000] [--rows=64] "
               "[--sampling_iters=5] [--configs=t1,qwen3,...] [--json]\n"
               "       rami-bench host-step [--tps=1,8] [--policies=dms,window,dense] "
               "[--contexts=4096,32768] [--host_batches=1,16,64,128,256] [--json]\n"
               "       rami-bench devices\n");
  return 2;
}
