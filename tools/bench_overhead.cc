// `rami-bench overhead`: rami-generate (a subprocess) and a job through the coordinator, in
// turns, for each configuration and run.
#include "tools/bench_overhead.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "rami/v1/inference.grpc.pb.h"
#include "tools/bench_load.h"

namespace rami::bench {
namespace {

namespace v1 = rami::v1;

// Single-quoted for sh -c.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// rami-generate's own figure: "<tokens> tokens in <s> s" (prefill and decode, no model load).
absl::StatusOr<double> GenerateTokensPerSecond(const OverheadOptions& o, int n, float temperature) {
  std::vector<std::string> prompts(n, absl::StrJoin(o.prompt, ","));
  const std::string command = absl::StrCat(Quote(o.generate), " --model=", Quote(o.model_dir),
                                           " --prompt_ids=", Quote(absl::StrJoin(prompts, ";")),
                                           " --max_tokens=", o.max_tokens,
                                           " --temperature=", temperature, " --seed=7 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("overhead: cannot start rami-generate");
  std::string output;
  char buffer[4096];
  while (size_t got = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, got);
  const int status = ::pclose(pipe);
  std::smatch m;
  static const std::regex kFigure(R"((\d+) tokens in ([0-9.]+) s \()");
  if (status != 0 || !std::regex_search(output, m, kFigure)) {
    return absl::InternalError(absl::StrCat("overhead: rami-generate failed (status ", status,
                                            "): ", output.substr(0, 2000)));
  }
  return std::stod(m[1].str()) / std::stod(m[2].str());
}

// The job through the coordinator: generated tokens over submit → Result.
absl::StatusOr<double> SystemTokensPerSecond(v1::Inference::Stub& stub, const OverheadOptions& o,
                                             int n, float temperature) {
  v1::GenerateRequest r;
  r.mutable_token_ids()->mutable_ids()->Assign(o.prompt.begin(), o.prompt.end());
  r.set_n(n);
  r.mutable_sampling()->set_temperature(temperature);
  r.mutable_sampling()->set_seed(7);
  r.mutable_stopping()->set_max_tokens(o.max_tokens);
  r.mutable_stopping()->set_ignore_eos(true);
  r.set_skip_prefix_cache(true);  // the same work as rami-generate: the prompt is prefilled
  grpc::ClientContext ctx;
  if (!o.api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + o.api_key);
  const absl::Time start = absl::Now();
  std::unique_ptr<grpc::ClientReader<v1::GenerateEvent>> reader = stub.Generate(&ctx, r);
  v1::GenerateEvent event;
  int64_t tokens = -1;
  while (reader->Read(&event)) {
    if (event.has_result()) tokens = event.result().usage().generated_tokens();
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  grpc::Status status = reader->Finish();
  if (tokens < 0) {
    return absl::InternalError(absl::StrCat("overhead: the job failed: ", status.error_message()));
  }
  return tokens / seconds;
}

std::vector<double> Sorted(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

absl::StatusOr<std::vector<OverheadRow>> RunOverhead(const OverheadOptions& o) {
  if (o.prompt.empty() || o.runs < 1 || o.max_tokens < 1 || o.generate.empty() ||
      o.model_dir.empty()) {
    return absl::InvalidArgumentError(
        "overhead: needs --model_dir, --generate, a prompt, --runs >= 1 and --max_tokens >= 1");
  }
  auto stub =
      v1::Inference::NewStub(grpc::CreateChannel(o.server, grpc::InsecureChannelCredentials()));
  std::vector<OverheadRow> rows;
  for (int n : o.n) {
    for (float t : o.temperatures) {
      OverheadRow row;
      row.n = n;
      row.temperature = t;
      rows.push_back(std::move(row));
    }
  }
  // Warm-up: one job each way (page cache, first allocations).
  if (absl::StatusOr<double> g = GenerateTokensPerSecond(o, 1, 0.0f); !g.ok()) return g.status();
  if (absl::StatusOr<double> s = SystemTokensPerSecond(*stub, o, 1, 0.0f); !s.ok()) {
    return s.status();
  }
  for (int run = 0; run < o.runs; ++run) {
    for (OverheadRow& row : rows) {
      absl::StatusOr<double> g = GenerateTokensPerSecond(o, row.n, row.temperature);
      if (!g.ok()) return g.status();
      absl::StatusOr<double> s = SystemTokensPerSecond(*stub, o, row.n, row.temperature);
      if (!s.ok()) return s.status();
      row.generate_tps.push_back(*g);
      row.system_tps.push_back(*s);
      row.ratio.push_back(*s / *g);
    }
  }
  return rows;
}

nlohmann::json OverheadJson(const OverheadOptions& o, const std::vector<OverheadRow>& rows) {
  nlohmann::json j = {
      {"benchmark", "overhead"},    {"model_dir", o.model_dir}, {"prompt_tokens", o.prompt.size()},
      {"max_tokens", o.max_tokens}, {"runs", o.runs},           {"rows", nlohmann::json::array()}};
  for (const OverheadRow& r : rows) {
    const std::vector<double> ratio = Sorted(r.ratio);
    j["rows"].push_back({{"n", r.n},
                         {"temperature", r.temperature},
                         {"generate_tokens_per_s_median", Percentile(r.generate_tps, 50)},
                         {"system_tokens_per_s_median", Percentile(r.system_tps, 50)},
                         {"ratio_median", Percentile(r.ratio, 50)},
                         {"ratio_min", ratio.front()},
                         {"ratio_max", ratio.back()}});
  }
  return j;
}

std::string OverheadText(const OverheadOptions& o, const std::vector<OverheadRow>& rows) {
  std::string out = absl::StrFormat(
      "overhead: %s, a %d-token prompt, %d tokens per branch, %d runs each way, alternating\n",
      o.model_dir, o.prompt.size(), o.max_tokens, o.runs);
  absl::StrAppendFormat(&out, "%4s %6s %16s %16s %13s %15s\n", "n", "temp", "generate tok/s",
                        "system tok/s", "ratio (med)", "ratio min-max");
  for (const OverheadRow& r : rows) {
    const std::vector<double> ratio = Sorted(r.ratio);
    absl::StrAppendFormat(&out, "%4d %6.1f %16.1f %16.1f %13.3f %7.3f-%.3f\n", r.n, r.temperature,
                          Percentile(r.generate_tps, 50), Percentile(r.system_tps, 50),
                          Percentile(r.ratio, 50), ratio.front(), ratio.back());
  }
  return out;
}

}  // namespace rami::bench
