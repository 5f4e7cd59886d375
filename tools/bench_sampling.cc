#include "tools/bench_sampling.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernels/sampling.h"

namespace rami::bench {
namespace {

// [rows, vocab] logits of one shape (bench_sampling.h); *top_mass receives the mean mass of
// the rows' top tokens at temperature 1.
std::vector<float> MakeLogits(const std::string& shape, int rows, int vocab, uint32_t seed,
                              double* top_mass) {
  std::mt19937_64 rng(seed);
  const bool peaked = shape == "peaked";
  std::normal_distribution<float> normal(0.0f, peaked ? 3.0f : 1.0f);
  std::uniform_real_distribution<double> mass(0.3, 0.9);
  std::uniform_int_distribution<int> token(0, vocab - 1);
  std::vector<float> logits(static_cast<size_t>(rows) * vocab);
  double top_sum = 0.0;
  for (int r = 0; r < rows; ++r) {
    float* x = logits.data() + static_cast<size_t>(r) * vocab;
    for (int i = 0; i < vocab; ++i) x[i] = normal(rng);
    if (peaked) {
      // e^x_top / (e^x_top + rest) = m  ⇔  x_top = log(m / (1 - m) · rest).
      const int top = token(rng);
      double rest = 0.0;
      for (int i = 0; i < vocab; ++i) rest += i == top ? 0.0 : std::exp(static_cast<double>(x[i]));
      const double m = mass(rng);
      x[top] = static_cast<float>(std::log(m / (1.0 - m) * rest));
    }
    double max = x[0], sum = 0.0;
    for (int i = 0; i < vocab; ++i) max = std::max(max, static_cast<double>(x[i]));
    for (int i = 0; i < vocab; ++i) sum += std::exp(x[i] - max);
    top_sum += 1.0 / sum;
  }
  *top_mass = top_sum / rows;
  return logits;
}

struct Config {
  const char* name;
  const char* knobs;
  float temperature;
  int top_k;
  float top_p;
  float min_p;
};

constexpr Config kConfigs[] = {
    {"greedy", "T=0", 0.0f, 0, 0.0f, 0.0f},
    {"t1", "T=1", 1.0f, 0, 0.0f, 0.0f},
    {"qwen3", "T=0.6 k=20 p=0.95", 0.6f, 20, 0.95f, 0.0f},
    {"top_p", "T=1 p=0.95", 1.0f, 0, 0.95f, 0.0f},
    {"min_p", "T=1 min_p=0.05", 1.0f, 0, 0.0f, 0.05f},
};

// This thread's CPU time in seconds: unlike wall time, it does not count the time other
// processes of a shared machine take the core.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Mean wall and CPU µs per row of `iters` SampleCpu calls over every row of `logits`, after
// one warm-up call, into row->us_per_row and row->cpu_us_per_row; call c draws token index c
// of each row's stream. row->tokens_hash folds in every chosen token.
void TimeConfig(const std::vector<float>& logits, int rows, int vocab, const Config& c, int iters,
                uint32_t seed, SamplingBenchRow* row) {
  uint64_t* hash = &row->tokens_hash;
  std::vector<float> t(rows, c.temperature), p(rows, c.top_p), mp(rows, c.min_p), lp(rows);
  std::vector<int32_t> k(rows, c.top_k), n(rows, 0), token(rows);
  std::vector<uint64_t> seeds(rows), index(rows);
  std::iota(seeds.begin(), seeds.end(), static_cast<uint64_t>(seed) << 32);
  const kernels::SampleParams params{.logits = logits.data(),
                                     .temperature = t.data(),
                                     .top_k = k.data(),
                                     .top_p = p.data(),
                                     .min_p = mp.data(),
                                     .seed = seeds.data(),
                                     .index = index.data(),
                                     .num_logprobs = n.data(),
                                     .token = token.data(),
                                     .logprob = lp.data(),
                                     .rows = rows,
                                     .vocab = vocab};
  std::fill(index.begin(), index.end(), uint64_t{1} << 40);  // warm-up: a stream of its own
  kernels::SampleCpu(params);
  *hash = 0xcbf29ce484222325ull;
  double seconds = 0.0, cpu_seconds = 0.0;
  for (int call = 0; call < iters; ++call) {
    std::fill(index.begin(), index.end(), static_cast<uint64_t>(call));
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = ThreadCpuSeconds();
    kernels::SampleCpu(params);
    cpu_seconds += ThreadCpuSeconds() - cpu_start;
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (int32_t id : token) {
      for (int b = 0; b < 4; ++b) {
        *hash = (*hash ^ ((static_cast<uint32_t>(id) >> (8 * b)) & 0xffu)) * 0x100000001b3ull;
      }
    }
  }
  row->us_per_row = seconds * 1e6 / (static_cast<double>(iters) * rows);
  row->cpu_us_per_row = cpu_seconds * 1e6 / (static_cast<double>(iters) * rows);
}

}  // namespace

absl::StatusOr<std::vector<SamplingBenchRow>> RunSamplingBench(const SamplingBenchOptions& o) {
  auto wanted = [&](const std::string& name) {
    return o.configs.empty() ||
           std::find(o.configs.begin(), o.configs.end(), name) != o.configs.end();
  };
  for (const std::string& name : o.configs) {
    if (std::none_of(std::begin(kConfigs), std::end(kConfigs),
                     [&](const Config& c) { return name == c.name; })) {
      return absl::InvalidArgumentError(
          absl::StrCat("no sampling configuration ", name, " (greedy, t1, qwen3, top_p, min_p)"));
    }
  }
  std::vector<SamplingBenchRow> out;
  for (int vocab : o.vocabs) {
    for (const char* shape : {"peaked", "flat"}) {
      double top_mass = 0.0;
      const std::vector<float> logits = MakeLogits(shape, o.rows, vocab, o.seed, &top_mass);
      for (const Config& c : kConfigs) {
        if (!wanted(c.name)) continue;
        SamplingBenchRow row{.vocab = vocab,
                             .logits = shape,
                             .config = c.name,
                             .knobs = c.knobs,
                             .top_mass = top_mass};
        TimeConfig(logits, o.rows, vocab, c, o.iters, o.seed, &row);
        out.push_back(row);
      }
    }
  }
  return out;
}

std::string SamplingBenchText(const SamplingBenchOptions& o,
                              const std::vector<SamplingBenchRow>& rows) {
  std::string text = absl::StrFormat(
      "sampling: kernels::SampleCpu, %d rows per call, %d timed calls, no top-n log-probs\n",
      o.rows, o.iters);
  absl::StrAppendFormat(&text, "%7s %-7s %8s %-7s %-18s %10s %10s  %-16s\n", "vocab", "logits",
                        "top mass", "config", "knobs", "us/row", "cpu us/row", "tokens (FNV-1a)");
  for (const SamplingBenchRow& r : rows) {
    absl::StrAppendFormat(&text, "%7d %-7s %8.3f %-7s %-18s %10.1f %10.1f  %016x\n", r.vocab,
                          r.logits, r.top_mass, r.config, r.knobs, r.us_per_row, r.cpu_us_per_row,
                          r.tokens_hash);
  }
  return text;
}

nlohmann::json SamplingBenchJson(const SamplingBenchOptions& o,
                                 const std::vector<SamplingBenchRow>& rows) {
  nlohmann::json j = {{"rows_per_call", o.rows},
                      {"iters", o.iters},
                      {"seed", o.seed},
                      {"rows", nlohmann::json::array()}};
  for (const SamplingBenchRow& r : rows) {
    j["rows"].push_back({{"vocab", r.vocab},
                         {"logits", r.logits},
                         {"top_mass", r.top_mass},
                         {"config", r.config},
                         {"knobs", r.knobs},
                         {"us_per_row", r.us_per_row},
                         {"cpu_us_per_row", r.cpu_us_per_row},
                         {"tokens_fnv1a", absl::StrFormat("%016x", r.tokens_hash)}});
  }
  return j;
}

}  // namespace rami::bench
